"""Reading a SQLite file beside this process's own connections to it.

POSIX record locks belong to a process and a file, not to a descriptor:
closing any descriptor of a file drops every lock the process holds on it.
SQLite shields its own descriptors from this (it keeps them open until its
locks are gone), but not ours. A plan's rehearsal holds read and reserved
locks on the live catalogs while, in helper threads, the fingerprint hashes
them and the preflight reads their headers; closing those reads' descriptors
would let another program write a catalog in the middle of the plan.

So while `keeping_sqlite_files_open()` is active, `read_file` keeps the
descriptor of a file that starts like a SQLite database open until the
block ends (the plan closes it after its connections); any other file is
closed at once, so a site of a hundred thousand media files holds no more
descriptors than it has catalogs.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

SQLITE_MAGIC = b"SQLite format 3\x00"

_guard = threading.Lock()
_kept: list[BinaryIO] | None = None


@contextlib.contextmanager
def keeping_sqlite_files_open() -> Iterator[None]:
    """Defer closing SQLite files read with `read_file` to the end of the block.

    End the block only after every SQLite connection that may hold locks on
    those files is closed."""
    global _kept
    with _guard:
        outer, _kept = _kept, [] if _kept is None else _kept
    try:
        yield
    finally:
        if outer is None:
            with _guard:
                kept, _kept = _kept or [], None
            for handle in kept:
                handle.close()


@contextlib.contextmanager
def read_file(path: Path, flags: int = 0) -> Iterator[BinaryIO]:
    """Open `path` for reading (os.open with `flags` added); on leaving, close it,
    unless it is a SQLite file and `keeping_sqlite_files_open` is active."""
    handle = os.fdopen(os.open(path, os.O_RDONLY | flags), "rb")
    try:
        yield handle
    finally:
        _close_or_keep(handle)


def _close_or_keep(handle: BinaryIO) -> None:
    with _guard:
        if _kept is not None:
            try:
                head = os.pread(handle.fileno(), 16, 0)
            except OSError:
                head = b""
            if head == SQLITE_MAGIC:
                _kept.append(handle)
                return
    handle.close()
