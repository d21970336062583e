"""A fingerprint of a site's catalogs and media, to detect a stale plan.

Catalogs (SQLite files) and small files are hashed; large media files are
identified by size and modification time, which every write path changes.
Files are read with `heldfiles.read_file`, so a plan's own SQLite locks on a
catalog survive the hashing (runner/engine/heldfiles.py).
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from runner.engine.heldfiles import SQLITE_MAGIC, read_file
from runner.site import STATE_DIR

HASH_LIMIT = 64 << 20  # hash files up to this size; larger ones use size + mtime


def fingerprint(root: Path) -> dict[str, str]:
    """Every entry under the site but .recover/, identified without following a
    link or opening anything but a regular file: a link is identified by where
    it points, a FIFO or device by its kind (opening one would block or never
    end), and a link loop is just a link."""
    result: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) == root and STATE_DIR in dirnames:
            dirnames.remove(STATE_DIR)
        dirnames.sort()
        for name in [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            dirnames.remove(name)  # os.walk does not descend into it; record the link
            filenames.append(name)
        for name in sorted(filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            try:
                info = path.lstat()
                if stat.S_ISLNK(info.st_mode):
                    result[rel] = f"link={os.readlink(path)}"
                elif not stat.S_ISREG(info.st_mode):
                    result[rel] = f"special={stat.S_IFMT(info.st_mode):o}"
                else:
                    result[rel] = _identify(path, info.st_size, info.st_mtime_ns)
            except OSError as exc:
                result[rel] = f"unreadable:{exc.errno}"
    return result


def _identify(path: Path, size: int, mtime_ns: int) -> str:
    # O_NOFOLLOW|O_NONBLOCK: if the file was swapped for a link or a FIFO since
    # lstat, fail (recorded as unreadable) instead of following or blocking.
    with read_file(path, os.O_NOFOLLOW | os.O_NONBLOCK) as handle:
        head = handle.read(16)
        if size > HASH_LIMIT and head != SQLITE_MAGIC:
            return f"size={size};mtime={mtime_ns}"
        digest = hashlib.sha256(head)
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return f"sha256={digest.hexdigest()}"


def describe_differences(old: dict[str, str], new: dict[str, str], limit: int = 10) -> list[str]:
    lines = []
    for rel in sorted(set(old) | set(new)):
        if rel not in new:
            lines.append(f"removed: {rel}")
        elif rel not in old:
            lines.append(f"added: {rel}")
        elif old[rel] != new[rel]:
            lines.append(f"changed: {rel}")
    if len(lines) > limit:
        lines = [*lines[:limit], f"... and {len(lines) - limit} more"]
    return lines
