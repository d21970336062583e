"""The allowed-data-loss window: "allow missing data created since <moment>".

Loss is accepted only for version data created at or after the window's
start. The default is "since yesterday at 00:00:00"; a window reaching back
more than a week needs the extra confirmation `wide_loss_window`; a window in
the future, or one that does not parse, is an error.

Besides ISO 8601 the moment takes the forms the version-history tool prints
and operators type (`yesterday.17:00`, `today.08:30`, `22-January`,
`22-Jan-2026.10:00`). A pools site records no time zone of its own, so every
moment without an offset is read in the zone of the run's clock: UTC, unless
RECOVER_NOW pins the clock with another offset.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from runner.errors import PreconditionFailed

DEFAULT = "yesterday"
WIDE_AFTER = timedelta(days=7)
CONFIRM_KEY = "wide_loss_window"

MONTHS = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
_MONTH = {name: i for i, name in enumerate(MONTHS, 1)} | {
    name[:3]: i for i, name in enumerate(MONTHS, 1)
}

#: What the fix of an unusable window lists (docs/pool_containers.md says the same).
FORMS = (
    "yesterday, today (00:00:00 of that day); yesterday.17:00, today.08:30 (that day at "
    "HH:MM[:SS]); 22-January, 22-Jan (the most recent 22 January not after the run's "
    "clock); 22-Jan-2026, 22-January-2026; any of the day-month forms with .HH:MM[:SS] "
    "(22-Jan-2026.10:00); ISO 8601: 2026-01-14, 2026-01-14T06:00, 2026-01-14T06:00:00Z, "
    "2026-01-14T06:00:00+01:00. Month names are English, in full or their first three "
    "letters, in any case; a moment without an offset is in the site's time zone (UTC)"
)
_HELP = (
    f"give allow_missing_data_since (the playbook's since) in one of these forms: {FORMS}; it "
    "must not be later than the run's clock. Example: allow_missing_data_since: "
    "yesterday.17:00 (or --param since=yesterday.17:00)"
)

_TIME = r"(?:\.(?P<h>\d{1,2}):(?P<m>\d{2})(?::(?P<s>\d{2}))?)?"
_RELATIVE = re.compile(r"(?P<day>today|yesterday)" + _TIME, re.IGNORECASE)
_DAY_MONTH = re.compile(r"(?P<d>\d{1,2})-(?P<mon>[a-z]+)(?:-(?P<y>\d{4}))?" + _TIME, re.IGNORECASE)


@dataclass(frozen=True)
class Window:
    since: datetime  # timezone-aware
    text: str  # what the playbook said

    def wide(self, now: datetime) -> bool:
        return self.since < now - WIDE_AFTER

    def accepts(self, created: datetime) -> bool:
        return created >= self.since


def parse(text: object, now: datetime) -> Window:
    """The window for `text` at the run's clock `now` (timezone-aware; its zone is
    the site's); PreconditionFailed if unusable."""
    word = _word(text)
    since = _in_range(moment(word, now), word)
    if since > now:
        raise PreconditionFailed(
            f"allow_missing_data_since {word!r} ({since.isoformat()}) is in the future "
            f"(the run's clock is {now.isoformat()}): such a window accepts nothing",
            fix=_HELP,
        )
    return Window(since, word)


def form(text: object) -> None:
    """PreconditionFailed if `text` is in none of the accepted forms: what
    `recover validate` checks, with no clock to say whether it is in the future."""
    word = _word(text)
    _in_range(moment(word, _LATEST), word)


_LATEST = datetime(9999, 12, 30, tzinfo=UTC)


def _word(text: object) -> str:
    if not isinstance(text, str) or not text.strip():
        raise _unparsable(text)
    return text.strip()


def _in_range(since: datetime, word: str) -> datetime:
    try:
        since.astimezone(UTC)  # an offset pushing a moment before year 1 or past 9999
    except (OverflowError, ValueError):
        raise _unparsable(word, "out of range") from None
    return since


def moment(word: str, now: datetime) -> datetime:
    """The moment `word` names, in `now`'s zone unless it carries an offset."""
    zone = now.tzinfo
    if match := _RELATIVE.fullmatch(word):
        day = now.date() - timedelta(days=match["day"].lower() == "yesterday")
        return datetime.combine(day, _time_of(match, word), tzinfo=zone)
    if match := _DAY_MONTH.fullmatch(word):
        month = _MONTH.get(match["mon"].lower())
        if month is None:
            raise _unparsable(word, f"{match['mon']!r} is not a month name")
        at = _time_of(match, word)
        if match["y"]:
            day = _date(int(match["y"]), month, int(match["d"]), word)
        else:
            day = _recent(month, int(match["d"]), now.date(), word)
        return datetime.combine(day, at, tzinfo=zone)
    try:
        since = datetime.fromisoformat(word.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise _unparsable(word) from None
    return since if since.tzinfo is not None else since.replace(tzinfo=zone)


def _time_of(match: re.Match[str], word: str) -> time:
    if match["h"] is None:
        return time(0, 0)
    try:
        return time(int(match["h"]), int(match["m"]), int(match["s"] or 0))
    except ValueError:
        raise _unparsable(word, "no such time of day") from None


def _date(year: int, month: int, day: int, word: str) -> date:
    try:
        return date(year, month, day)
    except ValueError:
        raise _unparsable(word, "no such date") from None


def _recent(month: int, day: int, today: date, word: str) -> date:
    """The most recent `day`-`month` not after `today` (29 February: up to 8 years back)."""
    if not 1 <= day <= 31:
        raise _unparsable(word, "no such date")
    for year in range(today.year, max(today.year - 8, 0), -1):
        try:
            candidate = date(year, month, day)
        except ValueError:
            continue
        if candidate <= today:
            return candidate
    raise _unparsable(word, "no such date")


def _unparsable(text: object, why: str = "") -> PreconditionFailed:
    detail = f" ({why})" if why else ""
    return PreconditionFailed(
        f"allow_missing_data_since {text!r} is not a date-time{detail}", fix=_HELP
    )
