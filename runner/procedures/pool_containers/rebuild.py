"""The changing half of `pools.fix`: rebuild containers by replaying the work file in batches.

(Named for what it does to the pools; roll_forward's `apply` and `replay` are
its own log replay.)

Per element, in this order: write each rebuilt container (atomic, under a new
name unique to the run), then move every alternate of the element to its
pool's lost+found. Per batch: fsync each directory the batch renamed into
(once, not once per file), point the catalog at the rebuilt containers,
drop the references to lost version data (the versions stay, their data is
marked gone), then checkpoint, which commits the catalog and the journal (with
the work file offset) together.

A crash between two checkpoints rolls the catalog back to the previous one;
the media operations of the unfinished batch are then repeated. Each is
repeatable: a rebuilt container is rewritten with the same bytes (its sources
are read from lost+found if they were moved already), and a move whose source
is gone and whose target exists is done. So no container is lost or
duplicated, and the end state equals an uninterrupted run's.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any, BinaryIO

from runner.contract import StepContext
from runner.errors import MediaError
from runner.procedures.pool_containers import catalog, media

# Raw sqlite3 (executemany, set-based SQL): the apply is a hot path the benchmark times.
_TEMP = (
    "DROP TABLE IF EXISTS temp.pools_fix_rebind",
    "DROP TABLE IF EXISTS temp.pools_fix_lost",
    "CREATE TEMP TABLE pools_fix_rebind (container_id INTEGER PRIMARY KEY, relpath TEXT)",
    "CREATE TEMP TABLE pools_fix_lost (version_id INTEGER PRIMARY KEY)",
)


def replay(
    ctx: StepContext,
    work: str,
    state: dict[str, Any],
    batch_size: int,
    save: Callable[[dict[str, Any]], None],
) -> None:
    """Apply the work file from state["offset"] on, checkpointing every batch."""
    for statement in _TEMP:
        ctx.db.execute(statement)
    total = int(state.get("lines", 0))
    # The batch's renames are made durable once per directory, just before the
    # checkpoint that commits the catalog pointing at them (see hold_dir_syncs).
    ctx.media.hold_dir_syncs()
    try:
        with ctx.media.open(work) as handle:
            handle.seek(int(state.get("offset", 0)))
            batch: list[dict[str, Any]] = []
            for line in ctx.progress(_lines_with_offsets(handle), total or None, "elements fixed"):
                element, offset = line
                if element["apply"]:
                    apply_media(ctx, element)
                    batch.append(element)
                if len(batch) >= batch_size:
                    ctx.media.sync_held_dirs()
                    apply_catalog(ctx, batch)
                    batch = []
                    save({**state, "offset": offset})
                    ctx.media.hold_dir_syncs()
            ctx.media.sync_held_dirs()
            if batch:
                apply_catalog(ctx, batch)
    finally:
        ctx.media.sync_held_dirs()
    for statement in _TEMP[:2]:
        ctx.db.execute(statement)


def _lines_with_offsets(handle: BinaryIO) -> Iterator[tuple[dict[str, Any], int]]:
    """(element, offset just after its line): the offset a checkpoint resumes from."""
    while True:
        raw = handle.readline()
        if not raw:
            return
        try:
            element = json.loads(raw)
        except ValueError as exc:
            raise MediaError(f"the fix's work file is damaged: {exc}") from exc
        yield element, handle.tell()


def apply_media(ctx: StepContext, element: dict[str, Any]) -> None:
    """Write the element's rebuilt containers, then move its alternates away."""
    moved = {src: dst for src, dst, *_ in element["alternates"]}
    for container in element["containers"]:
        if container["target"] is None:
            continue
        target = f"{container['pool_path']}/{container['target']}"
        write_rebuilt(ctx, element["oid"], element["tm"], container["parts"], target, moved)
        ctx.changed("pool files", "rebuilt containers written")
    for src, dst, *_ in element["alternates"]:
        ctx.media.move(src, dst)
        ctx.changed("pool files", "alternates moved to lost+found")


def write_rebuilt(
    ctx: StepContext,
    oid: str,
    tm: str,
    parts: list[list[Any]],
    target: str,
    moved: dict[str, str],
) -> None:
    """Clone-and-prune or version-by-version copy into a new container at `target`."""
    with ExitStack() as stack:
        opened: dict[str, tuple[BinaryIO, media.Header]] = {}

        def source(path: str) -> tuple[BinaryIO, media.Header]:
            if path not in opened:
                where = path
                try:
                    handle = stack.enter_context(ctx.media.open(path))
                except MediaError:
                    if path not in moved:
                        raise
                    where = moved[path]  # moved to lost+found before an interruption
                    handle = stack.enter_context(ctx.media.open(where))
                opened[path] = (handle, media.read_header(handle, where))
            return opened[path]

        out: list[media.Part] = []
        for branch, number, _vid, path, _src_tm in parts:
            handle, header = source(path)
            entry = header.entry((branch, number))
            if entry is None:
                raise MediaError(
                    f"{path} no longer holds version {branch}/{number}; the pools changed "
                    "during the fix",
                    fix="run the fix again: it re-examines the pools",
                )
            out.append(_part(tm, handle, header, entry))
        with ctx.media.writer(target) as handle:
            media.write(handle, oid, tm, out)


def _part(tm: str, handle: BinaryIO, header: media.Header, entry: media.VersionEntry) -> media.Part:
    """A version for the new container, read when written (digest checked once more).

    Same stored form (same type manager, or both uncompressed): the stored bytes
    as they are. Only compressing needs the data up front, for its length.
    """

    def verified_stored() -> bytes:
        stored = media.read_stored(handle, header, entry)
        media.check_version(header, entry, stored)  # one read, digest checked
        return stored

    def raw() -> bytes:
        return media.read_version(handle, header, entry)

    plain = header.type_manager != "compressed" and tm != "compressed"
    if header.type_manager == tm or plain:
        return media.Part(
            entry.branch, entry.number, entry.stored, entry.raw, entry.digest, verified_stored
        )
    if tm != "compressed":
        return media.Part(entry.branch, entry.number, entry.raw, entry.raw, entry.digest, raw)
    return media.part_from_raw(tm, entry.branch, entry.number, raw())


def apply_catalog(ctx: StepContext, batch: list[dict[str, Any]]) -> None:
    """Point the catalog at the batch's rebuilt containers and give up lost data."""
    db = ctx.db
    rebind = [(c["id"], c["target"]) for element in batch for c in element["containers"]]
    lost = [(vid,) for element in batch for c in element["containers"] for vid in c["lost"]]
    db.executemany("INSERT OR REPLACE INTO temp.pools_fix_rebind VALUES (?, ?)", rebind)
    db.executemany("INSERT OR IGNORE INTO temp.pools_fix_lost VALUES (?)", lost)
    _apply_sql(db, catalog.stamp(ctx.now), ctx)
    db.execute("DELETE FROM temp.pools_fix_rebind")
    db.execute("DELETE FROM temp.pools_fix_lost")


def _apply_sql(db: sqlite3.Connection, now: str, ctx: StepContext) -> None:
    cur = db.execute(
        """UPDATE containers
           SET relpath = (SELECT r.relpath FROM temp.pools_fix_rebind r
                          WHERE r.container_id = containers.id)
           WHERE id IN (SELECT container_id FROM temp.pools_fix_rebind
                        WHERE relpath IS NOT NULL)"""
    )
    ctx.changed("containers", "pointed at rebuilt container", cur.rowcount)
    cur = db.execute(
        "DELETE FROM container_versions WHERE version_id IN "
        "(SELECT version_id FROM temp.pools_fix_lost)"
    )
    ctx.changed("container_versions", "reference to lost data dropped", cur.rowcount)
    cur = db.execute(
        """UPDATE versions SET data = 'gone', data_gone_at = ?
           WHERE data = 'present' AND id IN (SELECT version_id FROM temp.pools_fix_lost)""",
        (now,),
    )
    ctx.changed("versions", "data present -> gone", cur.rowcount)
    cur = db.execute(
        """DELETE FROM containers
           WHERE id IN (SELECT container_id FROM temp.pools_fix_rebind WHERE relpath IS NULL)"""
    )
    ctx.changed("containers", "removed (every version lost)", cur.rowcount)
