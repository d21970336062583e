"""Modes 1 and 5: mark_affected_locations and clean_up (both set-based SQL)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from runner.contract import Check, Output, declare_outputs
from runner.errors import PreconditionFailed
from runner.procedures.archive_volume import catalog as cat
from runner.procedures.archive_volume.actions.base import ArchiveAction, VolumeNeed, require_checks

if TYPE_CHECKING:
    from runner.contract import StepContext


class MarkAffectedLocations(ArchiveAction):
    name = "archive.mark_affected_locations"
    summary = "Mark the volume's locations inside the ordinal ranges as in recovery (A -> R)"
    destructive = True
    outputs = declare_outputs(
        marked=Output("integer", "locations marked in recovery (A -> R)"),
        studies=Output("integer", "studies with a marked location"),
    )
    volume_need = VolumeNeed(online=False)

    def own_checks(self, ctx: StepContext) -> Iterable[Check]:
        raw = self.args.get("ranges")
        if raw == "scanned":
            found = cat.scanned_ranges(ctx.db, self.volume_ref)
            yield Check(
                "volume scanned",
                found is not None,
                "no scan recorded" if found is None else f"{len(found)} unreadable range(s)",
                None
                if found is not None
                else "run archive.scan_volume first (load the volume for it with "
                "archive.load and unload it after with archive.unload), or give the "
                "ranges explicitly",
            )
        elif raw is not None:
            try:
                cat.parse_ranges(raw)
            except PreconditionFailed as exc:
                yield Check("ordinal ranges valid", False, exc.message, exc.fix)

    def ranges(self, ctx: StepContext) -> list[tuple[int, int | None]]:
        """The ranges to mark: explicit, the last scan's, or the whole volume."""
        raw = self.args.get("ranges")
        if raw is None or raw == []:
            return [(0, None)]
        if raw == "scanned":
            found = cat.scanned_ranges(ctx.db, self.volume_ref) or []
            return [(b, e) for b, e in found]
        return cat.parse_ranges(raw)

    def run(self, ctx: StepContext) -> None:
        require_checks(iter(self.check(ctx)))
        ref = self.volume_ref
        marked = 0
        studies = 0  # study updates (a study in two ranges counts twice)
        for begin, end in self.ranges(ctx):
            where = "l.volume_ref = ? AND l.state = 'A' AND l.ordinal >= ?"
            params: list[object] = [ref, begin]
            if end is not None:
                where += " AND l.ordinal <= ?"
                params.append(end)
            # The archived count drops the good locations about to leave 'A';
            # counting first keeps the two statements consistent.
            studies += ctx.db.execute(
                "UPDATE catalog.studies SET archived_count = archived_count - m.n"
                " FROM (SELECT o.study_ref AS study_ref, count(*) AS n"
                "       FROM catalog.object_locations l"
                "       JOIN catalog.objects o ON o.object_id = l.object_id"
                f"      WHERE {where} GROUP BY o.study_ref) AS m"
                " WHERE studies.study_ref = m.study_ref",
                params,
            ).rowcount
            marked += ctx.db.execute(
                f"UPDATE catalog.object_locations AS l SET state = 'R' WHERE {where}", params
            ).rowcount
        ctx.changed("object_locations", "state A -> R", marked)
        ctx.changed("studies", "archived_count lowered", studies)
        ctx.note(f"{ref}: {marked:,} location(s) of {studies:,} study(ies) marked in recovery")
        ctx.output(marked=marked, studies=studies)


class CleanUp(ArchiveAction):
    name = "archive.clean_up"
    summary = "Finish recovered locations (S -> F), queue re-archive, delete unrecoverable objects"
    destructive = True
    outputs = declare_outputs(
        deleted_objects=Output("integer", "unrecoverable objects deleted"),
        finished=Output("integer", "recovered locations finished (S -> F)"),
        queued=Output("integer", "studies queued for re-archive"),
        unprotected=Output("integer", "cache entries unprotected"),
        volume_removed=Output("boolean", "whether the damaged volume was removed"),
        target_volume=Output("string or null", "the open volume re-archiving goes to"),
    )
    loss_units = ("objects",)
    volume_need = VolumeNeed(online=False)

    def target(self, ctx: StepContext) -> str | None:
        wanted = self.args.get("target_volume")
        opened = cat.open_volumes(ctx.db)
        if wanted:
            return str(wanted) if str(wanted) in opened else None
        return opened[0] if opened else None

    def own_checks(self, ctx: StepContext) -> Iterable[Check]:
        target = self.target(ctx)
        wanted = self.args.get("target_volume")
        yield Check(
            "open volume available",
            target is not None,
            f"re-archive to {target}"
            if target
            else (f"volume {wanted} is not an open volume" if wanted else "no open volume"),
            None if target else "open a writable volume in the archive (status 'open')",
        )
        pending = cat.count_states(ctx.db, self.volume_ref)[cat.IN_RECOVERY]
        yield Check(
            "recovery attempted for every study",
            pending == 0,
            f"{pending:,} location(s) still in recovery (R)" if pending else "no R locations left",
            "run archive.recovery_attempt (batches: all) with the volume and the carriers "
            "with copies loaded (archive.load with volume and copies_of), then unload the "
            "volume (archive.unload)"
            if pending
            else None,
        )

    def run(self, ctx: StepContext) -> None:
        require_checks(iter(self.check(ctx)))
        ref = self.volume_ref
        target = self.target(ctx)
        stamp = ctx.now.isoformat()
        db = ctx.db
        # 1. objects with no good copy anywhere are gone: delete them (data loss).
        db.execute("DROP TABLE IF EXISTS temp.archive_doomed")
        db.execute(
            "CREATE TEMP TABLE archive_doomed AS"
            " SELECT l.object_id AS object_id, o.study_ref AS study_ref"
            " FROM catalog.object_locations l JOIN catalog.objects o ON o.object_id = l.object_id"
            f" WHERE l.volume_ref = ? AND l.state = 'S' AND NOT {cat.RECOVERABLE_SQL}",
            (ref,),
        )
        doomed = db.execute("SELECT count(*) FROM temp.archive_doomed").fetchone()[0]
        examples = [
            f"{s}/{o}"
            for s, o in db.execute(
                "SELECT study_ref, object_id FROM temp.archive_doomed"
                " ORDER BY study_ref, object_id LIMIT 10"
            )
        ]
        for table in ("object_locations", "cached_objects", "objects"):
            db.execute(
                f"DELETE FROM catalog.{table}"
                " WHERE object_id IN (SELECT object_id FROM temp.archive_doomed)"
            )
        if doomed:
            ctx.lost("objects", doomed, examples)
            ctx.changed("objects", "deleted (unrecoverable)", doomed)
        # 2. every remaining location sent for recovery is finished.
        finished = db.execute(
            "UPDATE catalog.object_locations SET state = 'F' WHERE volume_ref = ? AND state = 'S'",
            (ref,),
        ).rowcount
        ctx.changed("object_locations", "state S -> F", finished)
        # 3. recovered studies: unprotect, and queue them to be archived again.
        recovered = (
            "SELECT study_ref FROM catalog.send_jobs WHERE volume_ref = ? AND objects_copied > 0"
        )
        unprotected = db.execute(
            "UPDATE catalog.cache_locations SET protected = 0"
            f" WHERE protected = 1 AND study_ref IN ({recovered})",
            (ref,),
        ).rowcount
        queued = db.execute(
            "INSERT INTO catalog.archive_destinations"
            " (study_ref, volume_ref, from_volume, queued_at)"
            f" SELECT j.study_ref, ?, ?, ? FROM ({recovered}) j"
            " WHERE EXISTS (SELECT 1 FROM catalog.studies s WHERE s.study_ref = j.study_ref)"
            " ON CONFLICT (study_ref, from_volume) DO NOTHING",
            (target, ref, stamp, ref),
        ).rowcount
        ctx.changed("cache_locations", "unprotected", unprotected)
        ctx.changed("archive_destinations", f"queued for re-archive to {target}", queued)
        # 4. studies left without any object are removed with their cache entries.
        empty = (
            "SELECT DISTINCT d.study_ref FROM temp.archive_doomed d WHERE NOT EXISTS"
            " (SELECT 1 FROM catalog.objects o WHERE o.study_ref = d.study_ref)"
        )
        db.execute(f"DELETE FROM catalog.cache_locations WHERE study_ref IN ({empty})")
        gone = db.execute(f"DELETE FROM catalog.studies WHERE study_ref IN ({empty})").rowcount
        ctx.changed("studies", "deleted (no objects left)", gone)
        db.execute("DROP TABLE temp.archive_doomed")
        # 5. the volume goes once no live location references it: first its finished
        #    (F) locations, then the rows that only record its recovery (scans, SEND
        #    jobs), then the volume itself, so no row references a volume that is gone.
        #    A volume that keeps good locations stays, and its F rows are the
        #    housekeeper's to delete.
        live = db.execute(
            "SELECT count(*) FROM catalog.object_locations WHERE volume_ref = ? AND state <> 'F'",
            (ref,),
        ).fetchone()[0]
        removed = False
        if live == 0:
            dropped = db.execute(
                "DELETE FROM catalog.object_locations WHERE volume_ref = ? AND state = 'F'",
                (ref,),
            ).rowcount
            ctx.changed("object_locations", "deleted (finished, volume removed)", dropped)
            db.execute("DELETE FROM catalog.volume_scans WHERE volume_ref = ?", (ref,))
            jobs = db.execute("DELETE FROM catalog.send_jobs WHERE volume_ref = ?", (ref,)).rowcount
            ctx.changed("send_jobs", "deleted (volume removed)", jobs)
            db.execute("DELETE FROM catalog.volumes WHERE volume_ref = ?", (ref,))
            ctx.changed("volumes", "removed", 1)
            removed = True
            ctx.note(
                f"{ref}: no live location references it any more; its {dropped:,} finished"
                " location(s) deleted and the volume removed from the catalog"
            )
        else:
            ctx.note(f"{ref}: {live:,} good location(s) remain; the volume stays in the catalog")
        ctx.output(
            deleted_objects=doomed,
            finished=finished,
            queued=queued,
            unprotected=unprotected,
            volume_removed=removed,
            target_volume=target,
        )
