"""The runner's idea of 'now'.

A run fixes its clock once and keeps it across resume, so every timestamp it
writes is the same whether or not it was interrupted. RECOVER_NOW pins it for
reproducible tests and demos.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from runner.errors import UsageError


def now() -> datetime:
    pinned = os.environ.get("RECOVER_NOW")
    if not pinned:
        return datetime.now(UTC).replace(microsecond=0)
    return parse_moment(pinned, f"RECOVER_NOW={pinned!r}")


def parse_moment(text: str, described: str) -> datetime:
    """A date-time an operator gave (ISO 8601; `Z` or no zone means UTC); a
    UsageError that starts with `described` if it is none."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{described} is not an ISO date-time") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


#: How catalogs store a moment: UTC to the second, text that sorts as it compares.
STAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(STAMP_FORMAT)


def parse_stamp(text: str) -> datetime:
    return datetime.strptime(text, STAMP_FORMAT).replace(tzinfo=UTC)
