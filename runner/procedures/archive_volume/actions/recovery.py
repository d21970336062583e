"""Mode 3: recovery_attempt, the SEND jobs that fetch studies back into cache.

Each batch takes the next `max_jobs` studies (in study_ref order) that still
have locations in recovery (R), and for each creates one SEND job that
gathers the whole study into the cache, verifying checksums: its objects in
recovery from their other copies (a verified cached copy, else a good
location on another online volume), and its other objects (a cached copy,
else their good location on the recovered volume, which is online for this,
else a good location on another online volume). Then the study's R
locations become S and its cache entry is protected. The SEND job's counts
(and so the post report and clean_up) are about the objects in recovery only.
Every batch is committed with `ctx.checkpoint`, so an interrupted run
resumes after the last finished batch; cache files are written atomically
with the same bytes, so redoing a half-done batch ends the same.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from contextlib import ExitStack
from typing import TYPE_CHECKING

from runner.contract import Check, Output, declare_outputs
from runner.errors import MediaError, SiteError
from runner.procedures.archive_volume import catalog as cat
from runner.procedures.archive_volume.actions.base import (
    ArchiveAction,
    VolumeNeed,
    media_problem,
    open_volume,
    require_checks,
)
from runner.procedures.archive_volume.media import VolumeReader, checksum

if TYPE_CHECKING:
    from runner.contract import StepContext

_MAX_WARNINGS = 20


class RecoveryAttempt(ArchiveAction):
    name = "archive.recovery_attempt"
    summary = "Create SEND jobs (max_jobs per batch) gathering whole studies in recovery into cache"
    destructive = True
    outputs = declare_outputs(
        jobs=Output("integer", "SEND jobs created"),
        batches=Output("integer", "batches run in this step"),
        recovered=Output("integer", "objects copied into the cache"),
        intact_in_cache=Output("integer", "intact objects already in the cache"),
        intact_not_fetched=Output("integer", "intact objects that could not be fetched"),
        remaining_studies=Output("integer", "studies still in recovery afterwards"),
    )
    volume_need = VolumeNeed(online=True)

    def own_checks(self, ctx: StepContext) -> Iterable[Check]:
        volume = cat.require_volume(ctx.db, self.volume_ref)
        problem = media_problem(ctx, volume)
        yield Check(
            "volume media readable",
            problem is None,
            problem or "header and size are sound",
            "restore the volume file from the repair shop's image" if problem else None,
        )
        needed = cat.carriers_needed(ctx.db, self.volume_ref)[1:]
        missing = [c for c, loaded, _ in needed if not loaded]
        yield Check(
            "carriers with copies loaded",
            not missing,
            f"not loaded: {', '.join(missing)}"
            if missing
            else f"{len(needed)} carrier(s) with copies, all loaded",
            f"load them first (archive.load with copies_of: {self.volume_ref})"
            if missing
            else None,
        )
        for (ref,) in ctx.db.execute(
            "SELECT volume_ref FROM catalog.volumes WHERE online = 1 AND volume_ref <> ?"
            " ORDER BY volume_ref",
            (self.volume_ref,),
        ).fetchall():
            source = cat.require_volume(ctx.db, ref)
            problem = media_problem(ctx, source)
            if problem:
                yield Check(
                    "source media readable",
                    False,
                    problem,
                    f"restore {source.media_path} or unload carrier {source.carrier_id}",
                )

    def run(self, ctx: StepContext) -> None:
        require_checks(iter(self.check(ctx)))
        max_jobs = int(self.args.get("max_jobs", 50))
        batches = self.args.get("batches", 1)
        limit = None if batches == "all" else int(batches)
        host = str(self.args.get("cache_host", cat.DEFAULT_CACHE_HOST))
        done = int(ctx.state.get("batches", 0))
        after = str(ctx.state.get("after", ""))
        jobs = int(ctx.state.get("jobs", 0))
        copied = int(ctx.state.get("copied", 0))
        written = int(ctx.state.get("written", 0))
        intact = int(ctx.state.get("intact", 0))
        intact_missing = int(ctx.state.get("intact_missing", 0))
        fetcher = _Fetcher(ctx, self.volume_ref, host)
        with ExitStack() as stack:
            stack.callback(fetcher.close)
            while limit is None or done < limit:
                studies = [
                    r[0]
                    for r in ctx.db.execute(
                        "SELECT s.study_ref FROM catalog.studies s WHERE s.study_ref > ?"
                        " AND EXISTS (SELECT 1 FROM catalog.objects o"
                        "  JOIN catalog.object_locations l ON l.object_id = o.object_id"
                        "  WHERE o.study_ref = s.study_ref AND l.volume_ref = ?"
                        "  AND l.state = 'R')"
                        " ORDER BY s.study_ref LIMIT ?",
                        (after, self.volume_ref, max_jobs),
                    )
                ]
                if not studies:
                    break
                label = f"recovery batch {done + 1}"
                fetcher.new_batch()
                for study_ref in ctx.progress(studies, len(studies), label):
                    recovered, others, missing = fetcher.send_job(study_ref)
                    copied += recovered
                    intact += others
                    intact_missing += missing
                    jobs += 1
                after = studies[-1]
                done += 1
                # Counted with the batch, so the checkpoint commits them together: after
                # an interruption the step's totals are those of an uninterrupted run.
                ctx.changed("send_jobs", "created", len(studies))
                ctx.changed("object_locations", "state R -> S", fetcher.sent)
                ctx.changed("cache", "objects copied in", fetcher.written)
                ctx.changed("cache", "objects not in recovery copied in", fetcher.gathered)
                ctx.changed("cache_locations", "protected", fetcher.protected)
                written += fetcher.written
                ctx.checkpoint(
                    {
                        "batches": done,
                        "after": after,
                        "jobs": jobs,
                        "copied": copied,
                        "written": written,
                        "intact": intact,
                        "intact_missing": intact_missing,
                    }
                )
        remaining = ctx.db.execute(
            "SELECT count(DISTINCT o.study_ref) FROM catalog.object_locations l"
            " JOIN catalog.objects o ON o.object_id = l.object_id"
            " WHERE l.volume_ref = ? AND l.state = 'R'",
            (self.volume_ref,),
        ).fetchone()[0]
        if fetcher.failures > _MAX_WARNINGS:
            ctx.warn(f"{fetcher.failures - _MAX_WARNINGS} more fetch failure(s) not shown")
        ctx.note(
            f"{self.volume_ref}: {jobs:,} SEND job(s) in {done} batch(es), {copied:,} object(s) "
            f"in recovery in cache ({written:,} copied now), {intact:,} other object(s) of these"
            f" studies in cache; {remaining:,} study(ies) still to do"
        )
        if intact_missing:
            ctx.note(
                f"{intact_missing:,} object(s) not in recovery could not be fetched (no readable"
                " copy online); they keep their good locations"
            )
        ctx.output(
            jobs=jobs,
            batches=done,
            recovered=copied,
            intact_in_cache=intact,
            intact_not_fetched=intact_missing,
            remaining_studies=remaining,
        )


class _Fetcher:
    """Runs SEND jobs: finds a good copy of each object and puts it in cache."""

    def __init__(self, ctx: StepContext, volume_ref: str, host: str) -> None:
        self.ctx = ctx
        self.db: sqlite3.Connection = ctx.db
        self.volume_ref = volume_ref
        self.host = host
        self.readers: dict[str, VolumeReader | MediaError] = {}
        self._stack = ExitStack()
        self.failures = 0
        self.new_batch()

    def new_batch(self) -> None:
        """Start the counts of one batch over (they are committed with its checkpoint)."""
        self.sent = 0
        self.written = 0  # objects in recovery copied into cache
        self.gathered = 0  # the studies' other objects copied into cache
        self.protected = 0

    def close(self) -> None:
        self._stack.close()

    def send_job(self, study_ref: str) -> tuple[int, int, int]:
        """One SEND job gathering one whole study into cache.

        Returns (objects in recovery now in cache, other objects now in cache,
        other objects that could not be fetched).
        """
        rows = self.db.execute(
            "SELECT o.object_id, o.checksum, EXISTS (SELECT 1 FROM catalog.cached_objects c"
            "  WHERE c.object_id = o.object_id)"
            " FROM catalog.objects o JOIN catalog.object_locations l ON l.object_id = o.object_id"
            " WHERE o.study_ref = ? AND l.volume_ref = ? AND l.state = 'R' ORDER BY o.object_id",
            (study_ref, self.volume_ref),
        ).fetchall()  # one study's objects: bounded by the study size
        in_cache = 0
        for object_id, expected, cached in rows:
            if self._fetch(study_ref, object_id, expected, bool(cached), own=False):
                in_cache += 1
        # The rest of the study: objects with no location in recovery on the volume.
        others = self.db.execute(
            "SELECT o.object_id, o.checksum, EXISTS (SELECT 1 FROM catalog.cached_objects c"
            "  WHERE c.object_id = o.object_id)"
            " FROM catalog.objects o WHERE o.study_ref = ? AND NOT EXISTS"
            " (SELECT 1 FROM catalog.object_locations l WHERE l.object_id = o.object_id"
            "  AND l.volume_ref = ? AND l.state IN ('R', 'S', 'F')) ORDER BY o.object_id",
            (study_ref, self.volume_ref),
        ).fetchall()
        gathered = 0
        for object_id, expected, cached in others:
            if self._fetch(study_ref, object_id, expected, bool(cached), own=True):
                gathered += 1
        state = "done" if in_cache == len(rows) else ("partial" if in_cache else "empty")
        self.db.execute(
            "INSERT INTO catalog.send_jobs (study_ref, volume_ref, created_at, state,"
            " objects_affected, objects_copied) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (study_ref, volume_ref) DO UPDATE SET"
            " objects_affected = objects_affected + excluded.objects_affected,"
            " objects_copied = objects_copied + excluded.objects_copied,"
            " state = CASE WHEN objects_copied + excluded.objects_copied = 0 THEN 'empty'"
            "  WHEN objects_copied + excluded.objects_copied"
            "       >= objects_affected + excluded.objects_affected THEN 'done'"
            "  ELSE 'partial' END",
            (study_ref, self.volume_ref, self.ctx.now.isoformat(), state, len(rows), in_cache),
        )
        self.sent += self.db.execute(
            "UPDATE catalog.object_locations SET state = 'S' WHERE volume_ref = ? AND state = 'R'"
            " AND object_id IN (SELECT object_id FROM catalog.objects WHERE study_ref = ?)",
            (self.volume_ref, study_ref),
        ).rowcount
        if in_cache:
            self.protected += 1
            self.db.execute(
                "INSERT INTO catalog.cache_locations (study_ref, host, protected) VALUES (?, ?, 1)"
                " ON CONFLICT (study_ref, host) DO UPDATE SET protected = 1",
                (study_ref, self.host),
            )
        elif gathered:
            # Only still-archived objects in cache: an ordinary, evictable cache entry.
            self.db.execute(
                "INSERT INTO catalog.cache_locations (study_ref, host, protected) VALUES (?, ?, 0)"
                " ON CONFLICT (study_ref, host) DO NOTHING",
                (study_ref, self.host),
            )
        return in_cache, gathered, len(others) - gathered

    def _fetch(
        self, study_ref: str, object_id: int, expected: str, cached: bool, own: bool
    ) -> bool:
        """Make sure a verified copy of the object is in cache; False if impossible.

        Sources, in order: the cached copy; then good (A) locations on online
        volumes, the recovered volume first when `own` (an object not in
        recovery: its location there is readable), the others in volume_ref order.
        """
        dest = cat.cache_path(study_ref, object_id)
        media = self.ctx.media
        if cached and media.exists(dest):
            try:
                if checksum(media.read_bytes(dest)) == expected:
                    return True
            except MediaError:
                pass
            self._warn(f"cached copy of object {object_id} is bad; fetching it again")
        for ref, ordinal in self.db.execute(
            "SELECT l.volume_ref, l.ordinal FROM catalog.object_locations l"
            " JOIN catalog.volumes v ON v.volume_ref = l.volume_ref"
            " WHERE l.object_id = ? AND (l.volume_ref <> ? OR ?) AND l.state = 'A'"
            " AND v.online = 1 ORDER BY l.volume_ref <> ?, l.volume_ref",
            (object_id, self.volume_ref, own, self.volume_ref),
        ).fetchall():
            reader = self._reader(ref)
            if isinstance(reader, MediaError):
                continue
            try:
                block = reader.read(ordinal)
            except MediaError as exc:
                self._warn(f"object {object_id}: {exc.message}")
                continue
            if block.object_id != object_id or checksum(block.payload) != expected:
                self._warn(f"object {object_id}: the copy on {ref}:{ordinal} fails verification")
                continue
            media.write_bytes(dest, block.payload)
            if own:
                self.gathered += 1
            else:
                self.written += 1
            self.db.execute(
                "INSERT INTO catalog.cached_objects (object_id, host) VALUES (?, ?)"
                " ON CONFLICT (object_id) DO UPDATE SET host = excluded.host",
                (object_id, self.host),
            )
            return True
        if cached:
            self.db.execute("DELETE FROM catalog.cached_objects WHERE object_id = ?", (object_id,))
        return False

    def _reader(self, ref: str) -> VolumeReader | MediaError:
        if ref not in self.readers:
            try:
                volume = cat.require_volume(self.db, ref)
                self.readers[ref] = self._stack.enter_context(open_volume(self.ctx, volume))
            except (MediaError, SiteError) as exc:
                self._warn(f"volume {ref} cannot be read: {exc.message}")
                self.readers[ref] = MediaError(exc.message)
        return self.readers[ref]

    def _warn(self, message: str) -> None:
        self.failures += 1
        if self.failures <= _MAX_WARNINGS:
            self.ctx.warn(message)
