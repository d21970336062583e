"""The allowed-data-loss window: "allow missing data created since <moment>".

Loss is accepted only for version data created at or after the window's
start. The default is "since yesterday at 00:00:00" (in the zone of the run's
clock); a window reaching back more than a week needs the extra confirmation
`wide_loss_window`; a window in the future, or one that does not parse, is an
error.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from runner.errors import PreconditionFailed

DEFAULT = "yesterday"
WIDE_AFTER = timedelta(days=7)
CONFIRM_KEY = "wide_loss_window"
_HELP = (
    "give allow_missing_data_since as 'yesterday', 'today', a date (2026-01-14) or an ISO "
    "date-time (2026-01-14T06:00:00+00:00); it must not be later than the run's clock"
)


@dataclass(frozen=True)
class Window:
    since: datetime  # timezone-aware
    text: str  # what the playbook said

    def wide(self, now: datetime) -> bool:
        return self.since < now - WIDE_AFTER

    def accepts(self, created: datetime) -> bool:
        return created >= self.since


def parse(text: object, now: datetime) -> Window:
    """The window for `text` at the run's clock `now`; PreconditionFailed if unusable."""
    if not isinstance(text, str) or not text.strip():
        raise PreconditionFailed(f"allow_missing_data_since {text!r} is not a date-time", fix=_HELP)
    word = text.strip()
    today = datetime.combine(now.date(), time(0, 0), tzinfo=now.tzinfo)
    if word.lower() == "yesterday":
        since = today - timedelta(days=1)
    elif word.lower() == "today":
        since = today
    else:
        try:
            since = datetime.fromisoformat(word.replace("Z", "+00:00"))
        except ValueError:
            raise PreconditionFailed(
                f"allow_missing_data_since {word!r} is not a date-time", fix=_HELP
            ) from None
        if since.tzinfo is None:
            since = since.replace(tzinfo=now.tzinfo)
    if since > now:
        raise PreconditionFailed(
            f"allow_missing_data_since {word!r} ({since.isoformat()}) is in the future "
            f"(the run's clock is {now.isoformat()}): such a window accepts nothing",
            fix=_HELP,
        )
    return Window(since, word)
