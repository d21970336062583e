"""Media access for actions: atomic, repeatable writes, and a dry-run overlay.

All media reads and writes of an action go through `MediaStore`, so that:
- in a real run every write is atomic (temp file, fsync, rename) and safe to
  repeat after a crash: re-running a step rewrites the same bytes;
- in a dry run nothing under the site changes: writes land in a scratch
  overlay outside the site, and later reads in the same plan see them, so a
  plan of many steps predicts exactly what the run would do.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from runner.engine import crash
from runner.errors import MediaError
from runner.site import Site, clean_relpath

TEMP_SUFFIX = ".recover-tmp"  # in-progress atomic writes; never a finished file


@dataclass
class MediaChange:
    """One predicted or performed media change, for plans and the journal."""

    op: str  # write | copy | move | remove | mkdir | symlink | rmdir
    path: str
    source: str | None = None
    size: int | None = None

    def describe(self) -> str:
        size = f" ({self.size:,} bytes)" if self.size is not None else ""
        if self.source:
            return f"{self.op} {self.source} -> {self.path}{size}"
        return f"{self.op} {self.path}{size}"


@dataclass
class MediaLog:
    """What a step did to media: every change counted, only the first few kept.

    A step may write millions of files; the log stays the same size.
    """

    keep: int = 12
    changes: list[MediaChange] = field(default_factory=list)
    totals: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # (op, dir) -> n, bytes

    def add(self, change: MediaChange) -> None:
        if len(self.changes) < self.keep:
            self.changes.append(change)
        area = change.path.rsplit("/", 1)[0] if "/" in change.path else "."
        counts = self.totals.setdefault((change.op, area.split("/")[0]), [0, 0])
        counts[0] += 1
        counts[1] += change.size or 0

    def to_json(self) -> dict[str, Any]:
        """The log as plain data, kept in the journal with each commit of a step."""
        return {
            "changes": [asdict(change) for change in self.changes],
            "totals": [[op, area, n, size] for (op, area), (n, size) in self.totals.items()],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MediaLog:
        """The log as a step's last commit left it ({} : a fresh one)."""
        log = cls()
        log.changes = [MediaChange(**change) for change in data.get("changes", [])]
        log.totals = {(op, area): [n, size] for op, area, n, size in data.get("totals", [])}
        return log

    def lines(self) -> list[str]:
        """Each change if there were few; otherwise a count per operation and top directory."""
        if sum(n for n, _ in self.totals.values()) <= self.keep:
            return [change.describe() for change in self.changes]
        return [
            f"{op} {count:,} file(s) under {area}/" + (f" ({size:,} bytes)" if size else "")
            for (op, area), (count, size) in sorted(self.totals.items())
        ]


@dataclass
class MediaStore:
    """Site media, seen through an overlay when `dry_run` is set."""

    site: Site
    dry_run: bool = False
    overlay_dir: Path | None = None
    log: MediaLog = field(default_factory=MediaLog)
    # The dry-run overlay: planned files, planned removals, and the names planned
    # writes add to each directory (so new directories exist and list correctly).
    _redirect: dict[str, Path] = field(default_factory=dict)  # rel -> where its bytes are
    _removed: set[str] = field(default_factory=set)
    _children: dict[str, set[str]] = field(default_factory=dict)
    # Directories whose fsync is held back (see hold_dir_syncs); None: sync at once.
    _held_dirs: set[Path] | None = None

    def __post_init__(self) -> None:
        if self.dry_run and self.overlay_dir is None:
            self.overlay_dir = Path(tempfile.mkdtemp(prefix="recover-plan-media-"))

    # -- reading -----------------------------------------------------------
    def path(self, rel: str) -> Path:
        """Where to read `rel` from right now (the overlay's copy in a dry run)."""
        key = clean_relpath(rel)
        if key in self._redirect:
            return self._redirect[key]
        if key in self._removed:
            assert self.overlay_dir is not None
            return self.overlay_dir / ".removed-in-plan" / key  # never exists
        return self.site.path(key)

    def exists(self, rel: str) -> bool:
        key = clean_relpath(rel)
        if key in self._redirect or self._children.get(key):
            return True
        if key in self._removed:
            return False
        return self.site.path(key).exists()

    def is_dir(self, rel: str) -> bool:
        """A directory on the site, or one that exists only because a dry run
        planned files in it."""
        return self.path(rel).is_dir() or bool(self.listdir(rel))

    def listdir(self, rel: str) -> list[str]:
        """Names in a site directory, including planned writes, sorted."""
        key = clean_relpath(rel)
        real = self.site.path(key)
        names = set(os.listdir(real)) if real.is_dir() else set()
        names |= self._children.get(key, set())
        return sorted(name for name in names if f"{key}/{name}" not in self._removed)

    def open(self, rel: str) -> BinaryIO:
        """Open a media file for reading. Only a regular file: a FIFO would block
        for ever and a device would never end, so both are refused unopened."""
        path = self.path(rel)
        try:
            mode = path.stat().st_mode
            if not stat.S_ISREG(mode):
                raise MediaError(
                    f"media file {rel} cannot be read: it is a {_kind(mode)}, not a regular file",
                    fix=f"replace {rel} with the real media file",
                )
            return open(path, "rb")
        except FileNotFoundError as exc:
            raise MediaError(
                f"media file {rel} is missing",
                fix=f"put the file back at {rel} (from a backup), or check --site",
            ) from exc
        except OSError as exc:
            raise MediaError(
                f"media file {rel} cannot be read: {exc.strerror}",
                fix=f"replace {rel} with a readable regular file",
            ) from exc

    def read_bytes(self, rel: str) -> bytes:
        with self.open(rel) as handle:
            return handle.read()

    # -- writing -----------------------------------------------------------
    @contextlib.contextmanager
    def writer(self, rel: str, *, source: str | None = None) -> Iterator[BinaryIO]:
        """Write a whole file atomically; it appears complete or not at all."""
        key = clean_relpath(rel)
        target = self._write_target(key)
        created = _missing_dirs(target.parent)
        target.parent.mkdir(parents=True, exist_ok=True)
        # One fixed temporary name per target: a write killed half way leaves at most
        # this file, which the repeated write truncates and renames (nothing piles up).
        # One run per site (the lock) means no one else writes it meanwhile.
        tmp = target.with_name(f".{target.name}{TEMP_SUFFIX}")
        mode = target.stat().st_mode & 0o7777 if target.exists() else 0o666
        try:
            fd = _create_fresh(tmp, mode)
            with os.fdopen(fd, "wb") as handle:
                yield handle
                handle.flush()
                if not self.dry_run:
                    os.fsync(handle.fileno())
            size = tmp.stat().st_size
            self._crash_point(f"write {key} before rename")
            os.replace(tmp, target)
            if not self.dry_run:
                self._sync_dir(target.parent)
                self._crash_point(f"write {key} after rename")
        except BaseException:
            tmp.unlink(missing_ok=True)
            for directory in created:  # deepest first: leave no trace of a failed write
                with contextlib.suppress(OSError):
                    directory.rmdir()
            raise
        self._landed(key, target)
        self.log.add(MediaChange("copy" if source else "write", key, source=source, size=size))

    def write_bytes(self, rel: str, data: bytes) -> None:
        with self.writer(rel) as handle:
            handle.write(data)

    def copy(self, src: str, dst: str) -> None:
        """Copy a file atomically (streaming, so large media stay out of memory)."""
        with self.open(src) as source, self.writer(dst, source=src) as target:
            shutil.copyfileobj(source, target, 1 << 20)

    def move(self, src: str, dst: str) -> None:
        """Rename within the site. Repeatable: an already-done move is not done again.

        A move found done (source gone, target there) was made by an attempt
        killed before its commit; it is logged as this attempt's, so the step's
        media summary is the same however often it was interrupted. A caller
        must not repeat a move its step has committed (the target might since
        have been moved on): a multi-file swap records how far it got.
        """
        skey, dkey = clean_relpath(src), clean_relpath(dst)
        if not self.exists(skey):
            if self.exists(dkey):
                self.log.add(MediaChange("move", dkey, source=skey))
                return  # done before an interruption
            raise MediaError(f"cannot move {src}: it is missing")
        if self.dry_run:
            self.site.path(dkey)  # refuses links out of the site, in a plan too
            self._plan(dkey, self.path(skey))
            self._unplan(skey)
        else:
            source, target = self.site.path(skey), self.site.path(dkey)
            target.parent.mkdir(parents=True, exist_ok=True)
            self._crash_point(f"move {skey} -> {dkey} before")
            os.replace(source, target)
            self._sync_dir(target.parent)
            self._crash_point(f"move {skey} -> {dkey} after")
        self.log.add(MediaChange("move", dkey, source=skey))

    def remove(self, rel: str) -> None:
        """Delete a file. Repeatable: a missing file is already removed.

        Call it only for a file the step found there: a missing one was removed
        by an attempt killed before its commit, and is logged as removed, so the
        step's media summary is the same however often it was interrupted.
        """
        key = clean_relpath(rel)
        if not self.exists(key):
            self.log.add(MediaChange("remove", key))
            return
        if self.dry_run:
            self._unplan(key)
        else:
            self._crash_point(f"remove {key} before")
            self.site.path(key).unlink()
            self._crash_point(f"remove {key} after")
        self.log.add(MediaChange("remove", key))

    def mkdir(self, rel: str) -> None:
        key = clean_relpath(rel)
        if self.exists(key):
            return
        if not self.dry_run:
            self.site.path(key).mkdir(parents=True, exist_ok=True)
            self._crash_point(f"mkdir {key} after")
        else:
            assert self.overlay_dir is not None
            (self.overlay_dir / key).mkdir(parents=True, exist_ok=True)
            self._plan(key, self.overlay_dir / key)
        self.log.add(MediaChange("mkdir", key))

    def symlink(self, rel: str, target_rel: str) -> None:
        """Make `rel` a relative symbolic link to the site path `target_rel`.

        Atomic: the link is made at a temporary name and renamed over `rel`, so
        it appears complete or not at all. Repeatable: the same link already
        there is left alone; another link or file at `rel` is replaced (a
        directory is not). A target that is outside the site, or resolves there
        through a link, is refused. In a dry run the link is planned in the overlay.
        """
        key = clean_relpath(rel)
        target_key = clean_relpath(target_rel, what="link target")
        if target_key == key:
            raise MediaError(f"cannot link {rel} to itself")
        self.site.path(target_key, what="link target")  # refuses a target out of the site
        parent = key.rpartition("/")[0]
        if parent:
            self.site.path(parent)  # the link's own directory may not lead out either
        value = os.path.relpath(target_key, parent or ".")
        full = self.site.root / key
        if not self.dry_run and full.is_symlink() and os.readlink(full) == value:
            self.log.add(MediaChange("symlink", key, source=value))  # see `move`
            return  # made before an interruption
        if self.dry_run:
            assert self.overlay_dir is not None
            planned = self.overlay_dir / key
            planned.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                planned.unlink()
            planned.symlink_to(self.site.root / target_key)
            self._plan(key, planned)
        else:
            if full.is_dir() and not full.is_symlink():
                raise MediaError(
                    f"cannot make the link {rel}: a directory is there",
                    fix=f"move {rel} aside, then run again",
                )
            full.parent.mkdir(parents=True, exist_ok=True)
            tmp = full.with_name(f".{full.name}{TEMP_SUFFIX}")
            _clear(tmp)
            os.symlink(value, tmp)
            self._crash_point(f"symlink {key} before rename")
            try:
                os.replace(tmp, full)
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                raise MediaError(f"cannot make the link {rel}: {exc.strerror}") from exc
            self._sync_dir(full.parent)
            self._crash_point(f"symlink {key} after rename")
        self.log.add(MediaChange("symlink", key, source=value))

    def rmdir_empty(self, rel: str) -> bool:
        """Remove the directory `rel` if it is empty; True if it is gone.

        Repeatable: a missing directory is already removed (logged as removed,
        like a missing file in `remove`); one that is not empty (or is not a
        directory) is left alone, a no-op. rmdir itself is atomic. In a dry run
        the removal is planned in the overlay, and a directory counts as empty
        when the plan has removed everything in it.
        """
        key = clean_relpath(rel)
        if not self.exists(key):
            self.log.add(MediaChange("rmdir", key))
            return True
        if self.path(key).is_symlink() or not self.is_dir(key) or self.listdir(key):
            return False  # a link is never a directory to remove, in a plan as in a run
        if self.dry_run:
            self._unplan(key)
        else:
            path = self.site.path(key)
            self._crash_point(f"rmdir {key} before")
            try:
                path.rmdir()
            except FileNotFoundError:
                self.log.add(MediaChange("rmdir", key))
                return True
            except OSError:
                return False  # something appeared in it meanwhile
            self._sync_dir(path.parent)
            self._crash_point(f"rmdir {key} after")
        self.log.add(MediaChange("rmdir", key))
        return True

    def hold_dir_syncs(self) -> None:
        """From now on, make renames durable once per directory at `sync_held_dirs`.

        A step that renames thousands of files between two checkpoints only needs
        them durable before the checkpoint that records them: a power cut before
        it rolls the step back to the previous checkpoint and the renames are
        repeated. Each written file's own data is still fsynced before its rename.
        """
        if self._held_dirs is None:
            self._held_dirs = set()

    def sync_held_dirs(self) -> None:
        """fsync every directory a held-back rename touched; stop holding back."""
        held, self._held_dirs = self._held_dirs, None
        for directory in sorted(held or ()):
            _fsync_dir(directory)

    def close(self) -> None:
        """Drop the dry-run overlay."""
        if self.dry_run and self.overlay_dir is not None:
            shutil.rmtree(self.overlay_dir, ignore_errors=True)

    # -- internals ---------------------------------------------------------
    def _write_target(self, key: str) -> Path:
        real = self.site.path(key)  # refuses links out of the site, in a plan too
        if not self.dry_run:
            return real
        assert self.overlay_dir is not None
        return self.overlay_dir / key

    def _crash_point(self, what: str) -> None:
        """A numbered crash point of a real run (runner.engine.crash; tests only)."""
        if crash.ACTIVE and not self.dry_run:
            crash.point(f"media {what}")

    def _sync_dir(self, directory: Path) -> None:
        if self._held_dirs is None:
            _fsync_dir(directory)
        else:
            self._held_dirs.add(directory)

    def _landed(self, key: str, target: Path) -> None:
        if self.dry_run:
            self._plan(key, target)

    def _plan(self, key: str, target: Path) -> None:
        self._redirect[key] = target
        self._removed.discard(key)
        parts = key.split("/")
        for depth in range(1, len(parts)):
            self._children.setdefault("/".join(parts[:depth]), set()).add(parts[depth])

    def _unplan(self, key: str) -> None:
        self._redirect.pop(key, None)
        self._removed.add(key)
        parent, _, name = key.rpartition("/")
        self._children.get(parent, set()).discard(name)


def _create_fresh(tmp: Path, mode: int) -> int:
    """Create the temporary file of an atomic write, never through a link.

    Whatever sits at the fixed temporary name is removed first, and the new
    file is created exclusively without following links.
    """
    _clear(tmp)
    return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)


def _clear(tmp: Path) -> None:
    """Remove what sits at a fixed temporary name: a leftover of a killed write,
    or a planted link (unlink removes the link itself, never its target)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)


def _kind(mode: int) -> str:
    """What a non-regular file is, in an operator's words."""
    kinds = (
        (stat.S_ISDIR, "directory"),
        (stat.S_ISFIFO, "FIFO (named pipe)"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISLNK, "symbolic link"),
    )
    return next((name for test, name in kinds if test(mode)), "special file")


def _fsync_dir(path: Path) -> None:
    """Make a rename durable (power cut safety)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _missing_dirs(directory: Path) -> list[Path]:
    """The directories `mkdir(parents=True)` would create for `directory`, deepest first."""
    missing = []
    while not directory.exists() and directory != directory.parent:
        missing.append(directory)
        directory = directory.parent
    return missing
