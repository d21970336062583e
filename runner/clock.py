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
    try:
        value = datetime.fromisoformat(pinned)
    except ValueError as exc:
        raise UsageError(f"RECOVER_NOW={pinned!r} is not an ISO date-time") from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)
