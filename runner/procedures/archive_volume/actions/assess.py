"""Modes 2 and 4: the pre- and post-recovery assessments (text + CSV reports).

Both are set-based: one statement builds a TEMP table, totals come from it,
and report rows stream from it in study order, so memory stays flat however
large the volume. SQL produces the finished values (status, counts, each
object's location line), so Python only joins strings into chunks of many
lines and hands them to the template: a per-row Jinja loop over a million
rows would cost more than the SQL.

Every report's template gets two row streams, both lazy (a query runs only if
the template loops over it): `lines`, the rows already laid out as the
shipped template prints them (chunks of whole lines), and `studies`, one
record per study with every column as a field, for a site's own layout.
"""

from __future__ import annotations

import csv
import io
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from itertools import groupby
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

from runner.contract import Output, declare_outputs
from runner.procedures.archive_volume import catalog as cat
from runner.procedures.archive_volume.actions.base import ArchiveAction, VolumeNeed, require_checks

if TYPE_CHECKING:
    from runner.contract import StepContext

T = TypeVar("T")

#: Rows fetched at a time, and the size a chunk handed to a template grows to
#: (a chunk is one string of whole lines).
CHUNK_ROWS = 1000
CHUNK_CHARS = 1 << 16

_META = "s.study_uid, s.accession_number, s.patient_name, s.patient_id, s.modality, s.station_name"


class Rows(Generic[T]):
    """A lazy, re-iterable row stream: its query runs each time a template loops over it."""

    def __init__(self, factory: Callable[[], Iterator[T]]) -> None:
        self._factory = factory

    def __iter__(self) -> Iterator[T]:
        return self._factory()


def _csv_chunks(batches: Iterable[Iterable[Iterable[Any]]]) -> Iterator[str]:
    """Batches of rows as CSV text (None -> empty cell), in chunks of about CHUNK_CHARS."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for batch in batches:
        writer.writerows(batch)
        if buffer.tell() >= CHUNK_CHARS:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()


def _batches(cursor: sqlite3.Cursor) -> Iterator[list[Any]]:
    while batch := cursor.fetchmany(CHUNK_ROWS):
        yield batch


def _joined(cursor: sqlite3.Cursor) -> Iterator[str]:
    """Single-column rows of finished lines (each ending in a newline), chunked."""
    for batch in _batches(cursor):
        yield "".join([row[0] for row in batch])


# -- pre-recovery assessment ---------------------------------------------------

#: One row per object of every study in recovery on :volume (a study with a
#: location R, S or F there), in study order: the study's objects in recovery
#: and its others (still good on the volume, or not on it at all). `ordinal`
#: and `state` are the object's location on :volume (-1 and '' = none there);
#: `in_recovery` = that location is R, S or F. `copies` lists its other
#: locations (VOL:ORDINAL:STATE) and "cache"; `good` = recoverable: in
#: recovery, and cached or with a good (A) location on another volume.
_PRE_OBJECTS = """
CREATE TEMP TABLE archive_pre_objects (
    study_ref   TEXT NOT NULL,
    object_id   INTEGER NOT NULL,
    ordinal     INTEGER NOT NULL,
    state       TEXT NOT NULL,
    in_recovery INTEGER NOT NULL,
    cached      INTEGER NOT NULL,
    good        INTEGER NOT NULL,
    copies      TEXT NOT NULL,
    PRIMARY KEY (study_ref, object_id, ordinal)
) WITHOUT ROWID
"""
_PRE_FILL = """
INSERT INTO temp.archive_pre_objects
SELECT study_ref, object_id, ordinal, state, in_recovery, cached,
       in_recovery AND (cached OR instr(others || ' ', ':A ') > 0),
       trim(others || CASE WHEN cached THEN ' cache' ELSE '' END)
FROM (SELECT o.study_ref AS study_ref, o.object_id AS object_id,
             coalesce(l.ordinal, -1) AS ordinal, coalesce(l.state, '') AS state,
             coalesce(l.state IN ('R', 'S', 'F'), 0) AS in_recovery,
             EXISTS (SELECT 1 FROM catalog.cached_objects c
                     WHERE c.object_id = o.object_id) AS cached,
             coalesce((SELECT group_concat(l3.volume_ref || ':' || l3.ordinal || ':' || l3.state,
                                           ' ')
                       FROM catalog.object_locations l3
                       WHERE l3.object_id = o.object_id AND l3.volume_ref <> :volume),
                      '') AS others
      FROM (SELECT DISTINCT o2.study_ref AS study_ref
            FROM catalog.object_locations l2
            JOIN catalog.objects o2 ON o2.object_id = l2.object_id
            WHERE l2.volume_ref = :volume AND l2.state IN ('R', 'S', 'F')) a
      JOIN catalog.objects o ON o.study_ref = a.study_ref
      LEFT JOIN catalog.object_locations l
        ON l.object_id = o.object_id AND l.volume_ref = :volume
      ORDER BY 1, 2, 3)
"""
#: One row per study in recovery (metadata NULL if the study row is missing):
#: `objects` all its objects, `in_recovery` those in recovery on the volume,
#: `recoverable` those of them with a good copy elsewhere.
_PRE_STUDIES = f"""
CREATE TEMP TABLE archive_pre AS
SELECT p.study_ref AS study_ref, p.objects AS objects, p.in_recovery AS in_recovery,
       p.recoverable AS recoverable, {_META}
FROM (SELECT study_ref, count(DISTINCT object_id) AS objects, sum(in_recovery) AS in_recovery,
             sum(good) AS recoverable
      FROM temp.archive_pre_objects GROUP BY study_ref ORDER BY study_ref) p
LEFT JOIN catalog.studies s ON s.study_ref = p.study_ref
ORDER BY p.study_ref
"""
_PRE_STUDY_ROWS = """
SELECT study_ref, study_uid, accession_number, patient_name, patient_id, modality, station_name,
       objects, in_recovery, recoverable, in_recovery - recoverable, {extra}
FROM temp.archive_pre WHERE study_uid IS NOT NULL ORDER BY study_ref
"""
#: Columns before `locations` in a study row (the CSV's and PreStudy's).
_PRE_FIELDS = 11
_PRE_TEXT_HEAD = (
    "'STUDY ' || study_ref || '  objects ' || objects || '  in recovery ' || in_recovery"
    " || '  recoverable ' || recoverable || '  unrecoverable ' || (in_recovery - recoverable)"
    " || char(10) || '  uid ' || study_uid"
    " || '  accession ' || accession_number || '  patient ' || patient_name"
    " || ' (' || patient_id || ')  ' || modality || ' at ' || station_name || char(10)"
)
#: An object's location on the volume as printed: VOL:ORDINAL:STATE, or "-" if none.
_PRE_ON_VOLUME = "CASE WHEN ordinal < 0 THEN '-' ELSE :volume || ':' || ordinal || ':' || state END"
_PRE_TEXT_LINE = (
    f"printf('  object %-10d %!-22s %s copies: %s', object_id, {_PRE_ON_VOLUME},"
    " CASE WHEN NOT in_recovery THEN 'not affected ' WHEN good THEN 'recoverable  '"
    " ELSE 'UNRECOVERABLE' END,"
    " CASE copies WHEN '' THEN 'none' ELSE copies END) || char(10)"
)
_PRE_CSV_PART = (
    f"object_id || ' ' || {_PRE_ON_VOLUME} || ' copies '"
    " || CASE copies WHEN '' THEN 'none' ELSE replace(copies, ' ', '+') END"
)
_PRE_OBJECT_ROWS = (
    "SELECT study_ref, {columns} FROM temp.archive_pre_objects"
    " ORDER BY study_ref, object_id, ordinal"
)


class PreLocation(NamedTuple):
    """One object of a study in recovery, for site templates (`s.locations`)."""

    object_id: int
    ordinal: int | None  # its location on the volume; None = not on the volume
    state: str | None
    in_recovery: bool
    recoverable: bool  # in recovery and a good copy exists elsewhere
    copies: str  # space-separated VOL:ORDINAL:STATE and "cache"; "" = none


class PreStudy(NamedTuple):
    """One study in the pre report, for site templates (`studies`)."""

    study_ref: str
    study_uid: str
    accession_number: str
    patient_name: str
    patient_id: str
    modality: str
    station_name: str
    objects: int  # all the study's objects
    in_recovery: int
    recoverable: int
    unrecoverable: int
    locations: list[PreLocation]  # every object of the study


def _merge(
    studies: sqlite3.Cursor, objects: sqlite3.Cursor
) -> Iterator[tuple[tuple[Any, ...], Iterator[tuple[Any, ...]]]]:
    """Pair each study row with its object rows (both in study_ref order).

    Objects of a study with no `studies` row (listed in neither report, counted
    in the totals) are skipped.
    """
    groups = groupby(objects, key=itemgetter(0))
    for study in studies:
        for ref, group in groups:
            if ref == study[0]:
                yield study, group
                break


class _Assessment(ArchiveAction):
    default_report: str
    default_csv: str

    def report_paths(self) -> tuple[str, str]:
        return (
            str(self.args.get("report", self.default_report)),
            str(self.args.get("csv", self.default_csv)),
        )


class PreRecoveryAssessment(_Assessment):
    name = "archive.pre_recovery_assessment"
    summary = "Report every study in recovery: objects, recoverable, locations, carriers to load"
    outputs = declare_outputs(
        report=Output("string", "the text report written"),
        csv=Output("string", "the CSV report written"),
        carriers=Output("list", "carriers holding other copies"),
        carriers_to_load=Output("list", "those of them not loaded yet"),
        studies=Output("integer", "studies in recovery"),
        objects=Output("integer", "objects in recovery"),
        in_recovery=Output("integer", "locations in recovery"),
        recoverable=Output("integer", "objects with another good copy"),
        unrecoverable=Output("integer", "objects with no other copy"),
        recoverable_studies=Output("integer", "studies with at least one recoverable object"),
        fully_recoverable_studies=Output("integer", "studies whose every object is recoverable"),
        unrecoverable_studies=Output("integer", "studies with no recoverable object"),
    )
    default_report = "reports/pre_report.txt"
    default_csv = "reports/pre_report.csv"
    volume_need = VolumeNeed(online=False)

    def run(self, ctx: StepContext) -> None:
        require_checks(iter(self.check(ctx)))
        ref = self.volume_ref
        db = ctx.db
        db.execute("DROP TABLE IF EXISTS temp.archive_pre_objects")
        db.execute("DROP TABLE IF EXISTS temp.archive_pre")
        db.execute(_PRE_OBJECTS)
        db.execute(_PRE_FILL, {"volume": ref})
        db.execute(_PRE_STUDIES)
        studies, objects, in_recovery, recoverable, unrecoverable_studies, fully = db.execute(
            "SELECT count(*), coalesce(sum(objects), 0), coalesce(sum(in_recovery), 0),"
            " coalesce(sum(recoverable), 0), coalesce(sum(recoverable = 0), 0),"
            " coalesce(sum(recoverable = in_recovery), 0) FROM temp.archive_pre"
        ).fetchone()
        carriers = [
            {"carrier_id": c, "loaded": loaded, "reason": why}
            for c, loaded, why in cat.carriers_needed(
                db,
                ref,
                "SELECT object_id FROM temp.archive_pre_objects"
                " WHERE (state IN ('R', 'S') OR ordinal < 0) AND NOT cached",
            )
        ]
        totals = {
            "studies": studies,
            "recoverable_studies": studies - unrecoverable_studies,
            "fully_recoverable_studies": fully,
            "unrecoverable_studies": unrecoverable_studies,
            "objects": objects,
            "in_recovery": in_recovery,
            "recoverable": recoverable,
            "unrecoverable": in_recovery - recoverable,
        }
        context: dict[str, Any] = {
            "volume": ref,
            "generated_at": ctx.now.isoformat(),
            "totals": totals,
            "carriers": carriers,
            "studies": Rows(lambda: self._studies(db, ref)),
        }
        report, csv_path = self.report_paths()
        written = ctx.report(
            "archive_volume/pre_report.txt.j2",
            report,
            {**context, "lines": Rows(lambda: self._text(db, ref))},
        )
        written_csv = ctx.report(
            "archive_volume/pre_report.csv.j2",
            csv_path,
            {**context, "lines": Rows(lambda: _csv_chunks(self._csv(db, ref)))},
        )
        db.execute("DROP TABLE temp.archive_pre")
        db.execute("DROP TABLE temp.archive_pre_objects")
        if studies == 0:
            ctx.warn(
                f"{ref}: no location is in recovery; run archive.mark_affected_locations first"
            )
        ctx.note(
            f"{ref}: {studies:,} study(ies) ({studies - unrecoverable_studies:,} recoverable) of"
            f" {objects:,} object(s), {in_recovery:,} in recovery: {recoverable:,} recoverable,"
            f" {in_recovery - recoverable:,} unrecoverable"
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

    @staticmethod
    def _pairs(
        db: sqlite3.Connection, ref: str, study_extra: str, object_columns: str
    ) -> Iterator[tuple[tuple[Any, ...], Iterator[tuple[Any, ...]]]]:
        studies = db.execute(_PRE_STUDY_ROWS.format(extra=study_extra))
        objects = db.execute(_PRE_OBJECT_ROWS.format(columns=object_columns), {"volume": ref})
        return _merge(studies, objects)

    def _text(self, db: sqlite3.Connection, ref: str) -> Iterator[str]:
        """The text report's study sections: header, one line per object, a blank line."""
        parts: list[str] = []
        for study, group in self._pairs(db, ref, _PRE_TEXT_HEAD, _PRE_TEXT_LINE):
            parts.append(study[_PRE_FIELDS])
            parts.extend([row[1] for row in group])
            parts.append("\n")
            if len(parts) >= CHUNK_ROWS:
                yield "".join(parts)
                parts.clear()
        if parts:
            yield "".join(parts)

    def _csv(self, db: sqlite3.Connection, ref: str) -> Iterator[list[tuple[Any, ...]]]:
        """The CSV report's study rows (one per batch), `locations` =
        `OBJECT VOL:ORD:STATE copies C1+C2; ...`."""
        for study, group in self._pairs(db, ref, "NULL", _PRE_CSV_PART):
            yield [(*study[:_PRE_FIELDS], "; ".join([row[1] for row in group]))]

    def _studies(self, db: sqlite3.Connection, ref: str) -> Iterator[PreStudy]:
        columns = "object_id, ordinal, state, in_recovery, good, copies"
        for study, group in self._pairs(db, ref, "NULL", columns):
            locations = [
                PreLocation(
                    r[1], None if r[2] < 0 else r[2], r[3] or None, bool(r[4]), bool(r[5]), r[6]
                )
                for r in group
            ]
            yield PreStudy._make((*study[:_PRE_FIELDS], locations))


# -- post-recovery assessment --------------------------------------------------

#: One row per study in recovery on the volume (locations R, S or F).
_POST_AGGREGATE = f"""
CREATE TEMP TABLE archive_post AS
SELECT o.study_ref AS study_ref,
       count(*) AS objects,
       sum(x.recoverable) AS recoverable,
       sum(x.recovered) AS recovered,
       EXISTS (SELECT 1 FROM catalog.send_jobs j
               WHERE j.study_ref = o.study_ref AND j.volume_ref = :volume) AS processed
FROM (SELECT l.object_id AS object_id,
             {cat.RECOVERABLE_SQL} AS recoverable,
             (l.state IN ('S', 'F') AND EXISTS (SELECT 1 FROM catalog.cached_objects c
                                                WHERE c.object_id = l.object_id)) AS recovered
      FROM catalog.object_locations l
      WHERE l.volume_ref = :volume AND l.state IN ('R', 'S', 'F')) AS x
JOIN catalog.objects o ON o.object_id = x.object_id
GROUP BY o.study_ref
"""
#: The post report's status column (blank while a study waits for its SEND job).
STATUS_SQL = """CASE WHEN NOT a.processed THEN ''
     WHEN a.recovered >= a.objects THEN 'fully recovered'
     WHEN a.recovered > 0 THEN 'partially recovered'
     ELSE 'unrecoverable' END"""
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
#: The finished report rows, in POST_COLUMNS order ({select} picks what to print).
_POST_ROWS = """
SELECT {select}
FROM (SELECT {status} AS status, a.study_ref AS study_ref, a.objects AS objects,
             a.recoverable AS recoverable, CASE WHEN a.processed THEN a.recovered ELSE 0 END
             AS recovered, {meta}
      FROM temp.archive_post a JOIN catalog.studies s ON s.study_ref = a.study_ref
      ORDER BY a.study_ref)
"""
_POST_TEXT_LINE = (
    "printf('%!-20s %!-12s %7d %11d %9d  %s', status, study_ref, objects, recoverable, recovered,"
    " study_uid || ' / ' || accession_number || ' / ' || patient_name || ' / ' || patient_id"
    " || ' / ' || modality || ' / ' || station_name) || char(10)"
)


class PostRow(NamedTuple):
    """One study in the post report, for site templates (`studies`)."""

    status: str
    study_ref: str
    objects: int
    recoverable: int
    recovered: int
    study_uid: str
    accession_number: str
    patient_name: str
    patient_id: str
    modality: str
    station_name: str


def _post_rows(db: sqlite3.Connection, select: str) -> sqlite3.Cursor:
    return db.execute(_POST_ROWS.format(select=select, status=STATUS_SQL, meta=_META))


class PostRecoveryAssessment(_Assessment):
    name = "archive.post_recovery_assessment"
    summary = "Report each study's recovery status, recovered counts and totals (text + CSV)"
    outputs = declare_outputs(
        report=Output("string", "the text report written"),
        csv=Output("string", "the CSV report written"),
        studies=Output("integer", "studies assessed"),
        objects=Output("integer", "objects assessed"),
        processed=Output("integer", "objects processed"),
        recovered=Output("integer", "objects recovered"),
        recoverable=Output("integer", "objects still recoverable"),
        unrecoverable=Output("integer", "objects with no good copy"),
        pending=Output("integer", "objects not yet processed"),
        fully=Output("integer", "studies fully recovered"),
        partially=Output("integer", "studies partly recovered"),
    )
    default_report = "reports/post_report.txt"
    default_csv = "reports/post_report.csv"
    volume_need = VolumeNeed(online=None)  # either: it may run while recovery is under way

    def run(self, ctx: StepContext) -> None:
        require_checks(iter(self.check(ctx)))
        ref = self.volume_ref
        db = ctx.db
        db.execute("DROP TABLE IF EXISTS temp.archive_post")
        db.execute(_POST_AGGREGATE, {"volume": ref})
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
        columns = ", ".join(POST_COLUMNS)
        context: dict[str, Any] = {
            "volume": ref,
            "generated_at": ctx.now.isoformat(),
            "totals": totals,
            "columns": list(POST_COLUMNS),
            "studies": Rows(lambda: map(PostRow._make, _post_rows(db, columns))),
        }
        report, csv_path = self.report_paths()
        written = ctx.report(
            "archive_volume/post_report.txt.j2",
            report,
            {**context, "lines": Rows(lambda: _joined(_post_rows(db, _POST_TEXT_LINE)))},
        )
        written_csv = ctx.report(
            "archive_volume/post_report.csv.j2",
            csv_path,
            {**context, "lines": Rows(lambda: _csv_chunks(_batches(_post_rows(db, columns))))},
        )
        db.execute("DROP TABLE temp.archive_post")
        ctx.note(
            f"{ref}: {totals['processed']:,} of {totals['studies']:,} study(ies) processed: "
            f"{totals['fully']:,} fully, {totals['partially']:,} partially recovered, "
            f"{totals['unrecoverable']:,} unrecoverable"
        )
        ctx.output(report=written, csv=written_csv, **totals)
