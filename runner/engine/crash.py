"""Numbered crash points: a power cut on demand anywhere in a run (tests only).

A real run passes a crash point at every progress item of a step, before and
after every media mutation (each write's rename, move, removal, link, mkdir,
rmdir) and before and after every commit of a step or a checkpoint. Points
are numbered from 1 in the order the process passes them; a dry run passes
none.

- `RECOVER_CRASH_AT=point:N` SIGKILLs the process at its Nth point.
- `RECOVER_CRASH_POINTS=FILE` writes FILE when the process exits: one line
  per point passed, its label (`media move before a -> b`, `commit fix after`,
  ...), so a test can pick kill points across a whole uninterrupted run.

Both variables are read once, at import; when neither is set a point costs a
call and one test of a module flag (`ACTIVE`, which hot loops test first).
"""

from __future__ import annotations

import atexit
import os
import signal
from pathlib import Path

_SPEC = os.environ.get("RECOVER_CRASH_AT", "")
_KILL_AT = int(_SPEC[6:]) if _SPEC.startswith("point:") and _SPEC[6:].isdigit() else 0
_TALLY = os.environ.get("RECOVER_CRASH_POINTS", "")
ACTIVE = bool(_KILL_AT or _TALLY)

_passed = 0
_labels: list[str] = []
_OWNER = os.getpid()  # a forked helper process passes no points of its own


def point(label: str) -> None:
    """Pass one crash point: SIGKILL here if it is the chosen one."""
    global _passed
    if not ACTIVE or os.getpid() != _OWNER:
        return
    _passed += 1
    if _TALLY:
        _labels.append(label)
    if _passed == _KILL_AT:
        os.kill(os.getpid(), signal.SIGKILL)


def _write_tally() -> None:
    if os.getpid() == _OWNER:
        Path(_TALLY).write_text("".join(f"{label}\n" for label in _labels))


if _TALLY:
    atexit.register(_write_tally)
