"""One run per site at a time.

An flock on `.recover/lock` (released by the kernel even on kill -9, so a
crashed run never leaves a stale lock behind), plus who/since written inside
it so a refused second run can say who holds the site.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import hashlib
import json
import os
import socket
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from loguru import logger

from runner.errors import SiteLocked


class SiteLock:
    def __init__(self, state_dir: Path, what: str) -> None:
        self.path = state_dir / "lock"
        self.what = what
        self._fd: int | None = None

    def __enter__(self) -> SiteLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise SiteLocked(
                f"the site is locked by another run: {holder}",
                fix="wait for that run to finish (see `recover status`), then run again",
            ) from None
        os.ftruncate(fd, 0)
        os.write(
            fd,
            json.dumps(
                {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "user": current_user(),
                    "since": datetime.now(UTC).isoformat(timespec="seconds"),
                    "what": self.what,
                }
            ).encode(),
        )
        os.fsync(fd)
        self._fd = fd
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def holder_of(state_dir: Path) -> str | None:
    """Who holds the site's lock right now, or None."""
    path = state_dir / "lock"
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


@contextlib.contextmanager
def reading(state_dir: Path) -> Iterator[None]:
    """Hold the site against runs while a plan reads it (a shared flock: plans
    may read side by side, a run waits for none of them and is refused).

    A site never run has no lock file; none is created for a plan (a plan
    changes nothing on the site, not even `.recover/`)."""
    path = state_dir / "lock"
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SiteLocked(
                f"a run is in progress on this site: {_read_holder(fd)}",
                fix="plan again when it has finished (see `recover status`)",
            ) from None
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _read_holder(fd: int) -> str:
    raw = os.pread(fd, 4096, 0)
    if not raw:
        return "a `recover plan` reading the site (no run holds it)"
    try:
        info = json.loads(raw)
    except ValueError:
        return "unknown holder"
    return (
        f"pid {info.get('pid')} on {info.get('host')} by {info.get('user')} "
        f"since {info.get('since')} ({info.get('what')})"
    )


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


@contextlib.contextmanager
def one_plan_at_a_time(site_root: Path) -> Iterator[None]:
    """Plans of one site take turns: a plan's rehearsal holds SQLite's write lock
    on each catalog it changes (in a transaction it rolls back), so a second plan
    would wait on it and fail with "database is locked". The turn is an flock on
    a file outside the site (a plan writes nothing in it), named after the site."""
    digest = hashlib.sha256(os.fsencode(site_root.resolve())).hexdigest()[:24]
    path = Path(tempfile.gettempdir()) / f"recover-plan-{digest}.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError:
        yield  # no private temp dir: plans then rely on SQLite's busy wait
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("another plan of this site is running; waiting for it to finish")
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
