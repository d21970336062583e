"""A fingerprint of a site's catalogs and media, to detect a stale plan.

Catalogs (SQLite files) and small files are hashed; large media files are
identified by size and modification time, which every write path changes.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from runner.site import STATE_DIR

HASH_LIMIT = 64 << 20  # hash files up to this size; larger ones use size + mtime
SQLITE_MAGIC = b"SQLite format 3\x00"


def fingerprint(root: Path) -> dict[str, str]:
    result: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) == root and STATE_DIR in dirnames:
            dirnames.remove(STATE_DIR)
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            try:
                stat = path.stat()
                result[rel] = _identify(path, stat.st_size, stat.st_mtime_ns)
            except OSError as exc:
                result[rel] = f"unreadable:{exc.errno}"
    return result


def _identify(path: Path, size: int, mtime_ns: int) -> str:
    with path.open("rb") as handle:
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
