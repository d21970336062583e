"""Modes 2 and 4: the pre- and post-recovery assessments (text + CSV reports).

Both aggregate once per study into a TEMP table in one set-based statement,
take their totals from it, and stream report rows from it (the pre report
also streams each study's object locations in one ordered query), so memory
stays flat however large the volume.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from itertools import groupby
from typing import TYPE_CHECKING, Any

from runner.engine.action import Check
from runner.procedures.archive_volume import catalog as cat
from runner.procedures.archive_volume.common import ArchiveAction, require_checks
from runner.reports import csvrow

if TYPE_CHECKING:
    from runner.engine.action import StepContext

_META = "s.study_uid, s.accession_number, s.patient_name, s.patient_id, s.modality, s.station_name"
POST_COLUMNS = (
    "status",
    "study_ref",
    "objects",
    "recoverable",
    "recovered",
    "study_uid",
    "accession_number",
    "patient_name",
    "patient_id",
    "modality",
    "station_name",
)
_META_KEYS = (
    "study_uid",
    "accession_number",
    "patient_name",
    "patient_id",
    "modality",
    "station_name",
)

#: One row per study in recovery on the volume (locations R, S or F).
_AGGREGATE = f"""
CREATE TEMP TABLE {{table}} AS
SELECT o.study_ref AS study_ref,
       count(*) AS objects,
       sum(x.recoverable) AS recoverable,
       sum(x.recovered) AS recovered,
       EXISTS (SELECT 1 FROM catalog.send_jobs j
               WHERE j.study_ref = o.study_ref AND j.volume_ref = ?) AS processed
FROM (SELECT l.object_id AS object_id,
             {cat.RECOVERABLE_SQL} AS recoverable,
             (l.state IN ('S', 'F') AND EXISTS (SELECT 1 FROM catalog.cached_objects c
                                                WHERE c.object_id = l.object_id)) AS recovered
      FROM catalog.object_locations l
      WHERE l.volume_ref = ? AND l.state IN ('R', 'S', 'F')) AS x
JOIN catalog.objects o ON o.object_id = x.object_id
GROUP BY o.study_ref
"""


def _aggregate(db: sqlite3.Connection, table: str, volume_ref: str) -> None:
    db.execute(f"DROP TABLE IF EXISTS temp.{table}")
    db.execute(_AGGREGATE.format(table=table), (volume_ref, volume_ref))


def study_status(processed: int, objects: int, recovered: int) -> str:
    """The post report's status column (blank while a study waits for its job)."""
    if not processed:
        return ""
    if recovered >= objects:
        return "fully recovered"
    return "partially recovered" if recovered else "unrecoverable"


class _Assessment(ArchiveAction):
    default_report: str
    default_csv: str
    volume_online: bool | None

    def check(self, ctx: StepContext) -> Iterable[Check]:
        return self.volume_checks(ctx, online=self.volume_online)

    def report_paths(self) -> tuple[str, str]:
        return (
            str(self.args.get("report", self.default_report)),
            str(self.args.get("csv", self.default_csv)),
        )


class PreRecoveryAssessment(_Assessment):
    name = "archive.pre_recovery_assessment"
    summary = "Report every study in recovery: objects, recoverable, locations, carriers to load"
    default_report = "reports/pre_report.txt"
    default_csv = "reports/pre_report.csv"
    volume_online = False

    def run(self, ctx: StepContext) -> None:
        require_checks(iter(self.check(ctx)))
        ref = self.volume_ref
        db = ctx.db
        _aggregate(db, "archive_pre", ref)
        studies, objects, recoverable = db.execute(
            "SELECT count(*), coalesce(sum(objects), 0), coalesce(sum(recoverable), 0)"
            " FROM temp.archive_pre"
        ).fetchone()
        unrecoverable_studies = db.execute(
            "SELECT count(*) FROM temp.archive_pre WHERE recoverable = 0"
        ).fetchone()[0]
        carriers = [
            {"carrier_id": c, "loaded": loaded, "reason": why}
            for c, loaded, why in cat.carriers_needed(db, ref)
        ]
        totals = {
            "studies": studies,
            "objects": objects,
            "recoverable": recoverable,
            "unrecoverable": objects - recoverable,
            "unrecoverable_studies": unrecoverable_studies,
        }
        context: dict[str, Any] = {
            "volume": ref,
            "generated_at": ctx.now.isoformat(),
            "totals": totals,
            "carriers": carriers,
        }
        report, csv = self.report_paths()
        written = ctx.report(
            "archive_volume/pre_report.txt.j2",
            report,
            {**context, "studies": self._studies(db, ref, "text")},
        )
        written_csv = ctx.report(
            "archive_volume/pre_report.csv.j2",
            csv,
            {**context, "studies": self._studies(db, ref, "csv")},
        )
        db.execute("DROP TABLE temp.archive_pre")
        if studies == 0:
            ctx.warn(
                f"{ref}: no location is in recovery; run archive.mark_affected_locations first"
            )
        ctx.note(
            f"{ref}: {studies:,} study(ies), {objects:,} object(s) in recovery: "
            f"{recoverable:,} recoverable, {objects - recoverable:,} unrecoverable"
        )
        to_load = [str(c["carrier_id"]) for c in carriers if not c["loaded"]]
        ctx.note("carriers to load: " + (", ".join(to_load) if to_load else "none"))
        ctx.output(
            report=written,
            csv=written_csv,
            carriers=[c["carrier_id"] for c in carriers],
            carriers_to_load=to_load,
            **totals,
        )

    def _studies(self, db: sqlite3.Connection, ref: str, kind: str) -> Iterator[dict[str, Any]]:
        """Studies in study_ref order, each with its objects and all their locations.

        The per-object lines are formatted here, not in the template: a study
        may have thousands of objects, and a million sandboxed template
        lookups cost more than the SQL. Templates still lay out each study.
        `kind` "text" fills `object_lines` (one line per object), "csv" fills
        `locations` (`OBJECT VOL:ORD:STATE copies C1+C2; ...`).
        """
        cursor = db.execute(
            f"""SELECT a.study_ref, a.objects, a.recoverable, {_META},
                       l.object_id, l.ordinal, l.state,
                       EXISTS (SELECT 1 FROM catalog.cached_objects c
                               WHERE c.object_id = l.object_id),
                       (SELECT group_concat(l3.volume_ref || ':' || l3.ordinal || ':' || l3.state,
                                            ' ')
                        FROM catalog.object_locations l3
                        WHERE l3.object_id = l.object_id AND l3.volume_ref <> l.volume_ref)
                FROM temp.archive_pre a
                JOIN catalog.studies s ON s.study_ref = a.study_ref
                JOIN catalog.objects o ON o.study_ref = a.study_ref
                JOIN catalog.object_locations l ON l.object_id = o.object_id
                     AND l.volume_ref = ? AND l.state IN ('R', 'S', 'F')
                ORDER BY a.study_ref, l.object_id""",
            (ref,),
        )
        text = kind == "text"
        for study_ref, rows in groupby(cursor, key=lambda r: r[0]):
            first: tuple[Any, ...] | None = None
            parts: list[str] = []
            for row in rows:
                first = first or row
                others = row[13] or ""
                # Recoverable = cached, or a good (A) copy on another volume.
                good = bool(row[12]) or any(c.endswith(":A") for c in others.split(" ") if c)
                copies = (others + " cache" if row[12] else others).strip()
                location = f"{ref}:{row[10]}:{row[11]}"
                if text:
                    parts.append(
                        f"  object {row[9]:<10} {location:<22} "
                        f"{'recoverable  ' if good else 'UNRECOVERABLE'} "
                        f"copies: {copies or 'none'}"
                    )
                else:
                    parts.append(f"{row[9]} {location} copies {copies.replace(' ', '+') or 'none'}")
            assert first is not None
            head = (
                f"STUDY {study_ref}  objects {first[1]}  recoverable {first[2]}  "
                f"unrecoverable {first[1] - first[2]}\n  uid {first[3]}  accession {first[4]}  "
                f"patient {first[5]} ({first[6]})  {first[7]} at {first[8]}"
            )
            yield {
                "header": head if text else "",
                "csv": ""
                if text
                else csvrow(
                    [
                        study_ref,
                        *first[3:9],
                        first[1],
                        first[2],
                        first[1] - first[2],
                        "; ".join(parts),
                    ]
                ),
                "study_ref": study_ref,
                "objects": first[1],
                "recoverable": first[2],
                "unrecoverable": first[1] - first[2],
                **dict(zip(_META_KEYS, first[3:9], strict=True)),
                "object_lines": "\n".join(parts) if text else "",
                "locations": "" if text else "; ".join(parts),
            }


class PostRecoveryAssessment(_Assessment):
    name = "archive.post_recovery_assessment"
    summary = "Report each study's recovery status, recovered counts and totals (text + CSV)"
    default_report = "reports/post_report.txt"
    default_csv = "reports/post_report.csv"
    volume_online = None  # either: it may run while recovery is under way

    def run(self, ctx: StepContext) -> None:
        require_checks(iter(self.check(ctx)))
        ref = self.volume_ref
        db = ctx.db
        _aggregate(db, "archive_post", ref)
        row = db.execute(
            """SELECT count(*),
                      coalesce(sum(processed), 0),
                      coalesce(sum(processed AND recovered >= objects), 0),
                      coalesce(sum(processed AND recovered > 0 AND recovered < objects), 0),
                      coalesce(sum(processed AND recovered = 0), 0),
                      coalesce(sum(objects), 0), coalesce(sum(recoverable), 0),
                      coalesce(sum(recovered), 0)
               FROM temp.archive_post"""
        ).fetchone()
        totals = dict(
            zip(
                (
                    "studies",
                    "processed",
                    "fully",
                    "partially",
                    "unrecoverable",
                    "objects",
                    "recoverable",
                    "recovered",
                ),
                row,
                strict=True,
            )
        )
        totals["pending"] = totals["studies"] - totals["processed"]
        context: dict[str, Any] = {
            "volume": ref,
            "generated_at": ctx.now.isoformat(),
            "totals": totals,
        }
        report, csv = self.report_paths()
        written = ctx.report(
            "archive_volume/post_report.txt.j2",
            report,
            {**context, "studies": self._rows(db, "text")},
        )
        written_csv = ctx.report(
            "archive_volume/post_report.csv.j2", csv, {**context, "studies": self._rows(db, "csv")}
        )
        db.execute("DROP TABLE temp.archive_post")
        ctx.note(
            f"{ref}: {totals['processed']:,} of {totals['studies']:,} study(ies) processed: "
            f"{totals['fully']:,} fully, {totals['partially']:,} partially recovered, "
            f"{totals['unrecoverable']:,} unrecoverable"
        )
        ctx.output(report=written, csv=written_csv, **totals)

    def _rows(self, db: sqlite3.Connection, kind: str) -> Iterator[dict[str, Any]]:
        """Report rows; each carries its preformatted `line` (text) or `csv` line.

        Shipped templates print those (a sandboxed lookup per cell would cost
        more than the SQL on a big volume); site templates may use the fields.
        """
        text = kind == "text"
        for row in db.execute(
            f"""SELECT a.processed, a.study_ref, a.objects, a.recoverable, a.recovered, {_META}
                FROM temp.archive_post a JOIN catalog.studies s ON s.study_ref = a.study_ref
                ORDER BY a.study_ref"""
        ):
            status = study_status(row[0], row[2], row[4])
            recovered = row[4] if row[0] else 0
            values = (status, row[1], row[2], row[3], recovered, *row[5:11])
            yield {
                **dict(zip(POST_COLUMNS, values, strict=True)),
                "line": (
                    f"{status:<20} {row[1]:<12} {row[2]:>7} {row[3]:>11} {recovered:>9}  "
                    + " / ".join(str(v) for v in row[5:11])
                )
                if text
                else "",
                "csv": "" if text else csvrow(values),
            }
