"""The allowed-data-loss window: forms accepted, default, the one-week line, errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from runner.errors import PreconditionFailed
from runner.procedures.pool_containers.window import parse

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
