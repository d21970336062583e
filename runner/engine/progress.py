"""How far a step has got, for whoever shows it: the engine measures, the CLI draws.

The engine knows no terminal. A step's `Meter` throttles what actions report
through `ctx.progress`: a listener (the CLI's live bar, runner.terminal) hears
at most every LISTEN_EVERY seconds, and the log gets a progress line at most
every LOG_EVERY seconds (the lines a run without a terminal shows). The loop
in `ctx.progress` asks the meter only every `stride` items, a stride the meter
sizes to the loop's speed, so a loop of millions of cheap items pays for a
counter and a comparison per item, and a loop of a hundred slow chunks is
still heard about every few tenths of a second.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

LISTEN_EVERY = 0.1
LOG_EVERY = 2.0
#: the loop asks the meter about this often (seconds), whatever its speed
ASK_EVERY = 0.05
MAX_STRIDE = 1 << 16


class ProgressListener(Protocol):
    """What shows progress (the CLI's live view); called from the step's own thread."""

    def step_started(self, step_id: str, action: str, *, dry_run: bool) -> None: ...

    def advanced(self, label: str, done: int, total: int | None) -> None: ...

    def step_ended(self) -> None: ...


_listeners: list[ProgressListener] = []


@contextmanager
def listening(listener: ProgressListener | None) -> Iterator[None]:
    """Let `listener` hear every step run inside the block (None: nobody listens)."""
    if listener is None:
        yield
        return
    _listeners.append(listener)
    try:
        yield
    finally:
        _listeners.remove(listener)


def current_listener() -> ProgressListener | None:
    return _listeners[-1] if _listeners else None


class Meter:
    """One step's progress: throttles the listener and the log's progress lines."""

    def __init__(self, log: Any, listener: ProgressListener | None) -> None:
        self._log = log
        self._listener = listener
        now = time.monotonic()
        self._last_logged = now
        self._last_heard = 0.0
        self._label = ""
        self._started = now
        self._last_count = 0
        self._last_asked = now
        self._stride = 1
        self._measured: set[str] = set()  # phases whose amount comes from measure()

    def begin(self, label: str, total: int | None) -> None:
        """A new phase (one `ctx.progress` loop): shown at once, as 0 done."""
        now = time.monotonic()
        self._label, self._started = label, now
        self._last_count, self._last_asked, self._stride = 0, now, 1
        if self._listener is not None:
            self._last_heard = now
            self._listener.advanced(label, 0, total)

    def update(self, count: int, total: int | None, *, final: bool = False) -> int:
        """`count` items of the current phase are done; returns how many more items
        to let by before asking again (about ASK_EVERY seconds' worth)."""
        now = time.monotonic()
        if self._label not in self._measured:
            self._show(count, total, now, final=final)
        elapsed = now - self._last_asked
        items = count - self._last_count
        self._last_count, self._last_asked = count, now
        if elapsed > 0:
            fits = int(items * ASK_EVERY / elapsed)
            # Grow at most twofold: a fast start must not hide a slow middle for long.
            self._stride = max(1, min(fits, 2 * self._stride, MAX_STRIDE))
        else:
            self._stride = min(2 * self._stride, MAX_STRIDE)
        return self._stride

    def measure(self, label: str, done: int, total: int | None) -> None:
        """A phase measured in its own unit (bytes read, say); a `ctx.progress`
        loop of the same label then counts its items without showing them."""
        if label != self._label or label not in self._measured:
            self._label, self._started = label, time.monotonic()
            self._measured.add(label)
        self._show(done, total, time.monotonic(), final=False)

    def _show(self, count: int, total: int | None, now: float, *, final: bool) -> None:
        if self._listener is not None and (final or now - self._last_heard >= LISTEN_EVERY):
            self._last_heard = now
            # A finished loop shows full, so what the step does next does not look stuck.
            shown_total = count if final and total is None else total
            self._listener.advanced(self._label, count, shown_total)
        if now - self._last_logged >= LOG_EVERY and not final:
            self._last_logged = now
            self._log_line(count, total, now)

    def _log_line(self, count: int, total: int | None, now: float) -> None:
        share = f" ({100 * count / total:.0f}%)" if total else ""
        rate = count / max(now - self._started, 1e-9)
        self._log.bind(console="plain").info(
            "{}: {:,}{}{} at {:,.0f}/s",
            self._label,
            count,
            f"/{total:,}" if total else "",
            share,
            rate,
        )
