"""The allowed-data-loss window: forms accepted (the version-history tool's and ISO 8601,
with property tests), default, the one-week line, errors."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.errors import PreconditionFailed
from runner.procedures.pool_containers.window import MONTHS, form, parse

NOW = datetime(2026, 1, 15, 12, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "since"),
    [
        ("yesterday", datetime(2026, 1, 14, tzinfo=UTC)),
        ("today", datetime(2026, 1, 15, tzinfo=UTC)),
        ("2026-01-10", datetime(2026, 1, 10, tzinfo=UTC)),
        ("2026-01-10T06:00:00", datetime(2026, 1, 10, 6, tzinfo=UTC)),
        ("2026-01-10T06:00:00Z", datetime(2026, 1, 10, 6, tzinfo=UTC)),
        ("2026-01-10T07:00:00+01:00", datetime(2026, 1, 10, 6, tzinfo=UTC)),
        ("1970-01-01", datetime(1970, 1, 1, tzinfo=UTC)),
    ],
)
def test_forms(text: str, since: datetime) -> None:
    assert parse(text, NOW).since == since


def test_yesterday_is_in_the_clocks_zone() -> None:
    tz = timezone(timedelta(hours=-5))
    now = datetime(2026, 1, 15, 2, tzinfo=tz)
    assert parse("yesterday", now).since == datetime(2026, 1, 14, tzinfo=tz)


def test_wide_after_one_week() -> None:
    assert not parse("2026-01-08T12:30:00+00:00", NOW).wide(NOW)
    assert parse("2026-01-08T12:29:59+00:00", NOW).wide(NOW)
    assert not parse("yesterday", NOW).wide(NOW)


@pytest.mark.parametrize("text", ["", "soon", "2026-13-01", "yesterday-ish", "12"])
def test_unparsable(text: str) -> None:
    with pytest.raises(PreconditionFailed, match="not a date-time"):
        parse(text, NOW)


def test_future() -> None:
    with pytest.raises(PreconditionFailed, match="in the future"):
        parse("2026-01-16", NOW)
    assert parse(NOW.isoformat(), NOW).since == NOW  # the present itself is allowed


@pytest.mark.parametrize(
    ("text", "since"),
    [
        ("yesterday.17:00", datetime(2026, 1, 14, 17, tzinfo=UTC)),
        ("today.08:30", datetime(2026, 1, 15, 8, 30, tzinfo=UTC)),
        ("Today.8:30:15", datetime(2026, 1, 15, 8, 30, 15, tzinfo=UTC)),
        ("22-January", datetime(2025, 1, 22, tzinfo=UTC)),  # the most recent, not after now
        ("15-Jan", datetime(2026, 1, 15, tzinfo=UTC)),  # today's date is not after now
        ("14-jan.17:00", datetime(2026, 1, 14, 17, tzinfo=UTC)),
        ("22-Jan-2025.10:00", datetime(2025, 1, 22, 10, tzinfo=UTC)),
        ("1-DECEMBER-2025", datetime(2025, 12, 1, tzinfo=UTC)),
        ("29-Feb", datetime(2024, 2, 29, tzinfo=UTC)),
    ],
)
def test_history_tool_forms(text: str, since: datetime) -> None:
    assert parse(text, NOW).since == since


def test_history_tool_forms_are_in_the_sites_zone() -> None:
    tz = timezone(timedelta(hours=2))
    now = datetime(2026, 1, 15, 1, tzinfo=tz)  # still the 14th in UTC
    assert parse("yesterday.17:00", now).since == datetime(2026, 1, 14, 17, tzinfo=tz)
    assert parse("15-Jan", now).since == datetime(2026, 1, 15, tzinfo=tz)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("22-Jan-2026.10:00", "in the future"),  # a day-month with a year is taken as given
        ("15-Jan.12:31", "in the future"),  # the date is today's; the time is later
        ("today.24:00", "no such time of day"),
        ("yesterday.17:60", "no such time of day"),
        ("31-Feb-2025", "no such date"),
        ("0-Jan", "no such date"),
        ("22-Jnauary", "is not a month name"),
        ("yesterday.17", "not a date-time"),
        ("22 January", "not a date-time"),
        ("0001-01-01T00:00:00+01:00", "out of range"),
    ],
)
def test_history_tool_forms_refused(text: str, why: str) -> None:
    with pytest.raises(PreconditionFailed, match=why) as caught:
        parse(text, NOW)
    fix = caught.value.fix or ""
    for accepted in ("yesterday.17:00", "today.08:30", "22-January", "22-Jan-2026.10:00", "ISO"):
        assert accepted in fix
    assert "--param since=yesterday.17:00" in fix  # a working example


# -- properties ---------------------------------------------------------------------------

ZONES = st.sampled_from(
    [UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=30))]
)


@st.composite
def clock_and_moment(draw: st.DrawFn) -> tuple[datetime, datetime]:
    """A run's clock and a moment at or before it, both in the site's zone, to the second."""
    zone = draw(ZONES)
    now = draw(st.datetimes(datetime(1990, 1, 1), datetime(2100, 1, 1))).replace(
        microsecond=0, tzinfo=zone
    )
    back = draw(st.timedeltas(timedelta(0), timedelta(days=5 * 366)))
    return now, (now - back).replace(microsecond=0)


def spellings(at: datetime, now: datetime) -> list[str]:
    """Every accepted form that names `at` at the clock `now`."""
    hms = f"{at.hour:02}:{at.minute:02}:{at.second:02}"
    hm = f"{at.hour}:{at.minute:02}" if at.second == 0 else hms
    month = MONTHS[at.month - 1]
    forms = [
        at.isoformat(),
        at.replace(tzinfo=None).isoformat(),
        f"{at.day}-{month.title()}-{at.year}.{hms}",
        f"{at.day:02}-{month[:3].upper()}-{at.year}.{hm}",
    ]
    midnight = at.time() == time(0)
    if midnight:
        forms += [at.date().isoformat(), f"{at.day}-{month[:3]}-{at.year}"]
    for word, day in (("today", now.date()), ("yesterday", now.date() - timedelta(days=1))):
        if at.date() == day:
            forms += [f"{word}.{hm}", f"{word.upper()}.{hms}"] + ([word] if midnight else [])
    recent = (at.month, at.day) <= (now.month, now.day)
    if at.year == (now.year if recent else now.year - 1):
        forms += [f"{at.day}-{month}.{hms}", f"{at.day}-{month[:3].title()}.{hm}"]
        forms += [f"{at.day}-{month}"] if midnight else []
    return forms


@settings(max_examples=300, deadline=None)
@given(clock_and_moment(), st.booleans())
def test_every_accepted_form_round_trips(pair: tuple[datetime, datetime], midnight: bool) -> None:
    now, at = pair
    if midnight:
        at = at.replace(hour=0, minute=0, second=0)
    for text in spellings(at, now):
        window = parse(text, now)
        assert window.since == at, text
        form(text)  # what validate accepts


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.text(),
        st.from_regex(
            r"\A(today|yesterday|\d{1,3}-[A-Za-z]{1,10}(-\d{1,5})?)(\.\d{1,3}:\d{1,3}(:\d{1,3})?)?\Z"
        ),
        st.from_regex(r"\A\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2})?([+-]\d{2}:\d{2}|Z)?)?\Z"),
    ),
    clock_and_moment(),
)
def test_garbage_never_crashes(text: str, pair: tuple[datetime, datetime]) -> None:
    """Anything is a window or a PreconditionFailed with the forms as its fix, and
    validate (`form`) agrees with the run whenever the moment is not in the future."""
    now = pair[0]
    try:
        window = parse(text, now)
    except PreconditionFailed as exc:
        assert "yesterday.17:00" in (exc.fix or "")
        if "in the future" in exc.message:
            form(text)
        else:
            with pytest.raises(PreconditionFailed):
                form(text)
    else:
        assert window.since <= now
        form(text)
