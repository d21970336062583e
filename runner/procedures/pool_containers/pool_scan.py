"""Scanning the pools into temporary tables, shared by check and fix.

Every file of every pool (except `lost+found/` and hidden files, such as the
temporary files of an interrupted atomic write) is listed and its header read.
What the scan learns lands in two TEMP tables on the step's connection, so
the joins with the catalog are set-based SQL and memory stays flat however
big the pools are:

- `temp.pools_present`: the ids of the referenced containers found in place;
- `temp.pools_file`: one row per file that is unreferenced, a cleartext copy or
  corrupt: pool, path, the referencing container (NULL when unreferenced), the
  identity and type manager in its header, and, when digests were checked,
  which versions are corrupt;
- `temp.pools_file_ver`: the versions held by unreferenced source-pool files
  and cleartext copies (the candidates for a rebuild).

Structural damage (not a container, truncated, wrong identity at a referenced
path) is collected over the whole scan and raised as one MediaError before
anything is changed.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice

from runner.contract import StepContext
from runner.errors import MediaError, SiteError
from runner.procedures.pool_containers import catalog, media

LOST_FOUND = "lost+found"
CHUNK = 2000
SMALL = 1 << 20  # containers up to this size are read whole
_FIRST = 1 << 16  # the first read's buffer: most containers fit
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
_SHOW = 10

# Raw sqlite3 here, not sqlite-utils: the scan is the hot path the benchmark times.
_TEMP = (
    "DROP TABLE IF EXISTS temp.pools_file",
    "DROP TABLE IF EXISTS temp.pools_file_ver",
    "DROP TABLE IF EXISTS temp.pools_present",
    """CREATE TEMP TABLE pools_file (
        id INTEGER PRIMARY KEY,
        pool TEXT NOT NULL,
        kind TEXT NOT NULL,
        relpath TEXT NOT NULL,
        container_id INTEGER,
        oid TEXT NOT NULL,
        type_manager TEXT NOT NULL,
        versions INTEGER NOT NULL,
        checked INTEGER NOT NULL,
        corrupt TEXT
    )""",
    "CREATE TEMP TABLE pools_present (container_id INTEGER PRIMARY KEY)",
    """CREATE TEMP TABLE pools_file_ver (
        file_id INTEGER NOT NULL,
        branch TEXT NOT NULL,
        number INTEGER NOT NULL,
        PRIMARY KEY (file_id, branch, number)
    ) WITHOUT ROWID""",
)
_INDEXES = (
    "CREATE INDEX temp.pools_file_container ON pools_file(container_id)",
    "CREATE INDEX temp.pools_file_oid ON pools_file(oid, kind)",
)


@dataclass(frozen=True)
class Pool:
    name: str
    path: str
    kind: str


@dataclass
class ScanStats:
    files: int = 0
    referenced: int = 0
    unreferenced: int = 0
    cleartext: int = 0
    checked: int = 0
    corrupt: int = 0
    damaged: list[str] = field(default_factory=list)
    damaged_count: int = 0

    def damage(self, text: str) -> None:
        self.damaged_count += 1
        if len(self.damaged) < _SHOW:
            self.damaged.append(text)


def load_pools(db: sqlite3.Connection) -> list[Pool]:
    """The catalog's pools, refusing any whose path is not a clean site path."""
    bad = catalog.bad_pool_paths(db)
    if bad:
        raise SiteError(
            "pool paths in the catalog are unusable: " + "; ".join(bad),
            fix="correct the path in the catalog's pools table to a directory inside the site",
        )
    return [Pool(n, p.rstrip("/"), k) for n, p, k in catalog.pools(db)]


def drop_temp(db: sqlite3.Connection) -> None:
    for statement in _TEMP[:3]:
        db.execute(statement)


def scan(
    ctx: StepContext,
    pools: list[Pool],
    *,
    verify: Callable[[Pool, bool], bool],
    label: str = "pool files",
) -> ScanStats:
    """Fill the temp tables from the pools; raise MediaError on structural damage.

    `verify(pool, referenced)` says whether to check a file's version digests.
    """
    db = ctx.db
    for statement in _TEMP:
        db.execute(statement)
    stats = ScanStats()
    files = ((pool, item) for pool in pools for item in walk(ctx, pool.path))
    chunk_iter = ctx.progress(files, None, label)
    # whether to check digests, per pool: (referenced files, unreferenced ones)
    checks = {pool.name: (verify(pool, True), verify(pool, False)) for pool in pools}
    next_id = 1
    while True:
        chunk = list(islice(chunk_iter, CHUNK))
        if not chunk:
            break
        rows: list[tuple[object, ...]] = []
        vers: list[tuple[int, str, int]] = []
        present: list[tuple[int]] = []
        for pool, group in _by_pool(chunk):
            refs = _referenced(db, pool.name, [rel for rel, _direct in group])
            check_ref, check_unref = checks[pool.name]
            cleartext = pool.kind == "cleartext"
            for rel, direct in group:
                ref = refs.get(rel)
                check = check_unref if ref is None else check_ref
                name = f"{pool.path}/{rel}"
                try:
                    oid, tm, entries, corrupt = _read(ctx, name, direct, check)
                except MediaError as exc:
                    stats.damage(exc.message)
                    continue
                if cleartext and tm != "whole_copy":
                    stats.damage(f"cleartext pool file {name} is not a whole copy")
                    continue
                if ref is not None and (oid != ref[1] or tm != ref[2]):
                    stats.damage(
                        f"container {name} has the wrong identity: it holds element {oid} "
                        f"({tm}), the catalog expects element {ref[1]} ({ref[2]})"
                    )
                    continue
                if check:
                    stats.checked += 1
                    if corrupt:
                        stats.corrupt += 1
                stats.files += 1
                container_id = None if ref is None else ref[0]
                if cleartext:
                    stats.cleartext += 1
                elif container_id is None:
                    stats.unreferenced += 1
                else:
                    stats.referenced += 1
                    present.append((container_id,))
                    if not corrupt:
                        continue  # a healthy referenced container needs no more than that
                rows.append(
                    (
                        next_id,
                        pool.name,
                        pool.kind,
                        rel,
                        container_id,
                        oid,
                        tm,
                        len(entries),
                        corrupt is not None,
                        json.dumps([f"{b}/{n}" for b, n in corrupt]) if corrupt else None,
                    )
                )
                if container_id is None:
                    vers.extend((next_id, e[0], e[1]) for e in entries)
                next_id += 1
        db.executemany("INSERT INTO temp.pools_file VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
        db.executemany("INSERT INTO temp.pools_file_ver VALUES (?,?,?)", vers)
        db.executemany("INSERT OR IGNORE INTO temp.pools_present VALUES (?)", present)
    for statement in _INDEXES:
        db.execute(statement)
    if stats.damaged_count:
        more = stats.damaged_count - len(stats.damaged)
        raise MediaError(
            f"{stats.damaged_count} damaged pool file(s): "
            + "; ".join(stats.damaged)
            + (f"; and {more} more" if more > 0 else "")
            + ". Nothing was changed",
            fix="move each damaged file out of the pool (e.g. into the pool's lost+found) or "
            "restore it from a backup, then run the step again",
        )
    return stats


def walk(ctx: StepContext, pool_path: str) -> Iterator[tuple[str, str | None]]:
    """(pool-relative path, direct path or None) of a pool's files, in sorted order.

    The pool directory is resolved once through ctx.media (which refuses paths
    and links leading out of the site). In a real run the plain files and
    directories below it are then read directly, which keeps a scan of a big
    pool close to raw I/O speed; symbolic links still go through ctx.media. In
    a dry run every name and read goes through ctx.media, so that a plan sees
    what its earlier steps would have written, moved or removed.
    """
    real = ctx.media.path(pool_path)
    if not ctx.media.exists(pool_path):
        raise MediaError(
            f"pool directory {pool_path} is missing",
            fix="restore the pool directory, or correct its path in the catalog",
        )
    if not real.is_dir():
        raise MediaError(f"pool path {pool_path} is not a directory")
    yield from _walk(ctx, pool_path, "", str(real), direct=not ctx.dry_run)


def _walk(
    ctx: StepContext, pool_path: str, rel: str, real: str | None, *, direct: bool
) -> Iterator[tuple[str, str | None]]:
    """`real` is the directory on the site (None if only a dry run's overlay has it)."""
    here = f"{pool_path}/{rel}" if rel else pool_path
    kinds: dict[str, str] = {}
    if real is not None:
        with os.scandir(real) as entries:
            for entry in entries:
                kinds[entry.name] = (
                    "dir"
                    if entry.is_dir(follow_symlinks=False)
                    else "file"
                    if entry.is_file(follow_symlinks=False)
                    else "other"
                )
    # A dry run takes the names from ctx.media (planned writes in, planned moves
    # and removals out); a planned write never turns a directory into a file, so
    # the kinds of the names on the site still hold.
    names = sorted(kinds) if direct else ctx.media.listdir(here)
    for name in names:
        if name.startswith(".") or (not rel and name == LOST_FOUND):
            continue
        sub = f"{rel}/{name}" if rel else name
        kind = kinds.get(name)
        if kind == "dir":
            yield from _walk(ctx, pool_path, sub, f"{real}/{name}", direct=direct)
        elif kind == "file":
            yield sub, (f"{real}/{name}" if direct else None)
        elif ctx.media.is_dir(f"{here}/{name}"):
            yield from _walk(ctx, pool_path, sub, None, direct=False)
        else:
            yield sub, None


def _by_pool(
    chunk: list[tuple[Pool, tuple[str, str | None]]],
) -> Iterator[tuple[Pool, list[tuple[str, str | None]]]]:
    current: Pool | None = None
    group: list[tuple[str, str | None]] = []
    for pool, item in chunk:
        if pool is not current:
            if current is not None:
                yield current, group
            current, group = pool, []
        group.append(item)
    if current is not None:
        yield current, group


def _referenced(
    db: sqlite3.Connection, pool: str, rels: list[str]
) -> dict[str, tuple[int, str, str]]:
    """relpath -> (container id, element oid, type manager) for the referenced ones."""
    # One range scan of the (pool, relpath) index covers the chunk; the rows of
    # the range that are not in the chunk are simply not looked up.
    rows = db.execute(
        """SELECT c.relpath, c.id, e.oid, c.type_manager
           FROM containers c JOIN elements e ON e.id = c.element_id
           WHERE c.pool = ? AND c.relpath BETWEEN ? AND ?""",
        (pool, min(rels), max(rels)),
    )
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def _read(
    ctx: StepContext, name: str, direct: str | None, verify: bool
) -> tuple[str, str, Sequence[media.Row], list[media.VersionKey] | None]:
    """(oid, type manager, version rows, corrupt versions when verifying).

    A plain file of a real run is read with one os.read into a buffer sized
    for the common case (pool containers are mostly a few KiB; a 1 MiB buffer
    per read costs more than the read itself); bigger ones are read up to
    SMALL, the rest streamed through ctx.media.
    """
    if direct is not None:
        try:
            fd = os.open(direct, _READ_FLAGS)
            try:
                blob = os.read(fd, _FIRST)
                if len(blob) == _FIRST:  # a regular file reads short only at its end
                    parts, size = [blob], len(blob)
                    while size <= SMALL:
                        more = os.read(fd, SMALL + 1 - size)
                        if not more:
                            break
                        parts.append(more)
                        size += len(more)
                    blob = b"".join(parts)
            finally:
                os.close(fd)
        except OSError as exc:
            raise MediaError(f"pool file {name} cannot be read: {exc.strerror}") from exc
        if len(blob) <= SMALL:
            return media.inspect(blob, name, verify)
    with ctx.media.open(name) as handle:
        header = media.read_header(handle, name)
        corrupt = media.corrupt_versions(handle, header) if verify else None
        return header.oid, header.type_manager, header.entries, corrupt
