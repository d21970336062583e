"""The daily tape access window (setting `tape_window`, `HH:MM-HH:MM` UTC): the
drive belongs to the system backup outside it, so every tape step refuses there.
Read by the actions' checks and by the world command's `--tape-window`."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time

from runner.errors import UsageError

_WINDOW = re.compile(r"^(\d\d):(\d\d)-(\d\d):(\d\d)$")


def parse_window(text: str) -> tuple[time, time]:
    """`HH:MM-HH:MM` (UTC); the end may be earlier than the start (over midnight)."""
    match = _WINDOW.match(text.strip())
    if not match:
        raise UsageError(f"tape_window {text!r} is not HH:MM-HH:MM")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
        raise UsageError(f"tape_window {text!r} has an impossible time of day")
    end = time(23, 59, 59, 999999) if h2 == 24 else time(h2, m2)
    return time(h1, m1), end


def in_window(text: str, moment: datetime) -> bool:
    start, end = parse_window(text)
    now = moment.astimezone(UTC).time()
    if start <= end:
        return start <= now < end
    return now >= start or now < end
