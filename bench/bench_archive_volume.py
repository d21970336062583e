"""Benchmark: archive-volume modes through the runner vs hand-written SQL.

    python bench/bench_archive_volume.py [--scale 1.0] [--keep DIR]

Builds a catalog-only archive site (`recover world archive --media none`) with
about 5 million object locations at scale 1 (and a second one a quarter that
size), loses one volume entirely, and times mark_affected_locations,
pre_recovery_assessment and post_recovery_assessment run by `recover run` in a
subprocess against a plain Python script running equivalent SQL and writing
the same reports on an identical copy of the catalog, in the same run. Prints
seconds, ratios (target: runner within 1.2x) and each runner subprocess's
peak RSS at both sizes (target: flat as the catalog grows).
"""

from __future__ import annotations

import argparse
import csv
import filecmp
import io
import itertools
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from itertools import groupby
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import Target, child_env, measure, record, recover, step_seconds  # noqa: E402

STUDIES_AT_SCALE_1 = 360_000  # about 5.0 million object locations
VOLUME = "VOL0002"
OPS = ("mark", "pre", "post")
ACTIONS = {
    "mark": "archive.mark_affected_locations",
    "pre": "archive.pre_recovery_assessment",
    "post": "archive.post_recovery_assessment",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="size multiplier (1 = ~5M)")
    parser.add_argument("--keep", type=Path, help="build the sites here and keep them")
    parser.add_argument("--baseline", nargs=2, metavar=("OP", "SITE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.baseline:
        return _baseline(args.baseline[0], Path(args.baseline[1]))
    # Like an installed package: the runner starts from cached bytecode.
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(ROOT / "runner")], check=True, env=_env()
    )
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-archive-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        big = max(200, int(STUDIES_AT_SCALE_1 * args.scale))
        results = [_measure(work, "small", big // 4), _measure(work, "large", big)]
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print("process = whole `recover run` subprocess vs whole baseline subprocess (both include")
    print("interpreter start; the runner also imports click/jinja/jsonschema/loguru and opens")
    print("its journal and lock: ~0.25 s); in-process = the step's journal time vs the")
    print("baseline's SQL + report time. Both write byte-identical reports.\n")
    print(
        f"{'catalog':>8} {'locations':>10} {'op':>5} {'runner s':>9} {'raw s':>7} "
        f"{'ratio':>6} {'step s':>7} {'SQL s':>7} {'ratio':>6} {'runner MB':>10} {'raw MB':>7}"
    )
    worst = 0.0
    worst_process = 0.0
    for size in results:
        for op in OPS:
            r, b, rss = size["runner"][op], size["raw"][op], size["rss"][op]
            st, wk = size["step"][op], size["work"][op]
            worst_process = max(worst_process, r / b)
            worst = max(worst, st / wk)
            print(
                f"{size['name']:>8} {size['locations']:>10,} {op:>5} {r:>9.2f} {b:>7.2f} "
                f"{r / b:>6.2f} {st:>7.2f} {wk:>7.2f} {st / wk:>6.2f} {rss / 1024:>10.1f} "
                f"{size['raw_rss'][op] / 1024:>7.1f}"
            )
    small, large = results
    for op in OPS:  # the results were compared (_same_results asserts): same is True
        what = f"{op} {large['locations']:,} locations"
        record(Target("archive_volume", what, large["step"][op], large["work"][op], 1.2))
    growth = max(large["rss"][op] / small["rss"][op] for op in OPS)
    print(
        f"\nworst ratio runner/raw: in-process {worst:.2f}, whole process "
        f"{worst_process:.2f} (target <= 1.2)"
    )
    print(
        f"peak RSS growth for {large['locations'] / small['locations']:.1f}x the catalog: "
        f"{growth:.2f}x (target: flat)"
    )
    return 0


def _measure(work: Path, name: str, studies: int) -> dict[str, object]:
    site = work / f"{name}-runner"
    raw = work / f"{name}-raw"
    for path in (site, raw):
        shutil.rmtree(path, ignore_errors=True)
    started = time.perf_counter()
    subprocess.run(
        recover("world", "archive", site, "--studies", studies, "--media", "none", "--seed", 11),
        check=True,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    shutil.copytree(site, raw)
    with sqlite3.connect(site / "catalog.sqlite") as db:
        locations = db.execute("SELECT count(*) FROM object_locations").fetchone()[0]
    print(
        f"[{name}] {locations:,} object locations, {studies:,} studies, generated in "
        f"{time.perf_counter() - started:.1f}s",
        flush=True,
    )
    runner: dict[str, float] = {}
    rawt: dict[str, float] = {}
    rss: dict[str, int] = {}
    raw_rss: dict[str, int] = {}
    step: dict[str, float] = {}
    sql: dict[str, float] = {}
    for op in OPS:
        playbook = _playbook(work, op)
        ran = measure(recover("run", playbook, "--site", site, "--yes"), _env())
        runner[op], rss[op] = ran.seconds, ran.rss_kib
        step[op] = step_seconds(site, op)
        base = measure(
            [sys.executable, str(Path(__file__).resolve()), "--baseline", op, str(raw)], _env()
        )
        rawt[op], raw_rss[op] = base.seconds, base.rss_kib
        sql[op] = float((raw / "reports" / f"raw-{op}.seconds").read_text())
        print(
            f"[{name}] {op}: runner {runner[op]:.2f}s ({rss[op] / 1024:.0f} MB), "
            f"raw {rawt[op]:.2f}s ({raw_rss[op] / 1024:.0f} MB); in-process: step {step[op]:.2f}s, "
            f"raw SQL {sql[op]:.2f}s",
            flush=True,
        )
    _same_results(site, raw)
    return {
        "name": name,
        "locations": locations,
        "runner": runner,
        "raw": rawt,
        "rss": rss,
        "raw_rss": raw_rss,
        "step": step,
        "work": sql,
    }


def _playbook(work: Path, op: str) -> Path:
    path = work / f"bench-{op}.yaml"
    step = {"id": op, "action": ACTIONS[op], "args": {"volume": VOLUME}}
    path.write_text(
        json.dumps(
            {
                "version": 1,
                "name": f"bench-{op}",
                "description": "benchmark",
                "site": {"root": ".", "catalog": "catalog.sqlite"},
                "steps": [step],
            }
        )
    )
    return path


def _env() -> dict[str, str]:
    """The runner's clock is pinned to NOW so both sides write the same reports."""
    return child_env(RECOVER_NOW=NOW)


def _same_results(site: Path, raw: Path) -> None:
    """The runner and the baseline must have done the same work: same catalog, same reports."""
    queries = (
        "SELECT state, count(*) FROM object_locations GROUP BY state",
        "SELECT sum(archived_count) FROM studies",
    )
    for sql in queries:
        with (
            sqlite3.connect(site / "catalog.sqlite") as a,
            sqlite3.connect(raw / "catalog.sqlite") as b,
        ):
            assert a.execute(sql).fetchall() == b.execute(sql).fetchall(), sql
    for report in REPORTS:
        ours, theirs = site / "reports" / report, raw / "reports" / report
        assert filecmp.cmp(ours, theirs, shallow=False), f"{ours} and {theirs} differ"


# -- the hand-written baseline ------------------------------------------------
NOW = "2026-01-02T03:04:05+00:00"  # the runner's clock is pinned to it (RECOVER_NOW)
REPORTS = ("pre_report.txt", "pre_report.csv", "post_report.txt", "post_report.csv")


def _baseline(op: str, site: Path) -> int:
    started = time.perf_counter()
    db = sqlite3.connect(site / "catalog.sqlite", isolation_level=None)
    (site / "reports").mkdir(exist_ok=True)
    db.execute("BEGIN IMMEDIATE")
    if op == "mark":
        db.execute(
            "UPDATE studies SET archived_count = archived_count - m.n FROM"
            " (SELECT o.study_ref AS ref, count(*) AS n FROM object_locations l JOIN objects o"
            "  ON o.object_id = l.object_id WHERE l.volume_ref = ? AND l.state = 'A'"
            "  GROUP BY o.study_ref) m WHERE studies.study_ref = m.ref",
            (VOLUME,),
        )
        db.execute(
            "UPDATE object_locations SET state = 'R' WHERE volume_ref = ? AND state = 'A'",
            (VOLUME,),
        )
    elif op == "pre":
        _raw_pre(db, site)
    else:
        _raw_post(db, site)
    seconds = time.perf_counter() - started  # like the journal's step time: before COMMIT
    db.execute("COMMIT")
    db.close()
    (site / "reports" / f"raw-{op}.seconds").write_text(f"{seconds:.6f}")
    return 0


def _write(path: Path, chunks: Iterable[str]) -> None:
    """Write a report as the runner does: temporary file, fsync, rename, fsync the directory."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as handle:
        for chunk in chunks:
            handle.write(chunk.encode())
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _csv_line(values: Iterable[object]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()


def _csv_rows(rows: Iterable[Iterable[object]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in rows:
        writer.writerow(row)
        if buffer.tell() > 1 << 16:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _by_study(db: sqlite3.Connection, head: str, line: str) -> Iterator[tuple[tuple, list[str]]]:
    """Each study row of temp.s with its objects' `line` values (both in study order)."""
    objects = groupby(
        db.execute(f"SELECT study_ref, {line} FROM temp.o ORDER BY 1, object_id, ordinal"),
        key=lambda r: r[0],
    )
    for study in db.execute(f"SELECT *, {head} FROM temp.s ORDER BY study_ref"):
        for ref, rows in objects:
            if ref == study[0]:
                yield study, [r[1] for r in rows]
                break


def _raw_pre(db: sqlite3.Connection, site: Path) -> None:
    db.execute(
        "CREATE TEMP TABLE o (study_ref TEXT, object_id INT, ordinal INT, state TEXT, ir INT,"
        " cached INT, good INT, copies TEXT, PRIMARY KEY (study_ref, object_id, ordinal))"
        " WITHOUT ROWID"
    )
    db.execute(
        "INSERT INTO o SELECT ref, id, ord, st, ir, c, ir AND (c OR instr(x || ' ', ':A ') > 0),"
        " trim(x || CASE WHEN c THEN ' cache' ELSE '' END) FROM (SELECT o.study_ref AS ref,"
        " o.object_id AS id, coalesce(l.ordinal, -1) AS ord, coalesce(l.state, '') AS st,"
        " coalesce(l.state IN ('R','S','F'), 0) AS ir, EXISTS (SELECT 1 FROM"
        " cached_objects c WHERE c.object_id = o.object_id) AS c, coalesce((SELECT"
        " group_concat(x.volume_ref || ':' || x.ordinal || ':' || x.state, ' ') FROM"
        " object_locations x WHERE x.object_id = o.object_id AND x.volume_ref <> ?1),"
        " '') AS x FROM (SELECT DISTINCT o2.study_ref FROM object_locations l2 JOIN objects o2"
        " ON o2.object_id = l2.object_id WHERE l2.volume_ref = ?1 AND l2.state IN ('R','S','F'))"
        " a JOIN objects o ON o.study_ref = a.study_ref LEFT JOIN object_locations l"
        " ON l.object_id = o.object_id AND l.volume_ref = ?1 ORDER BY 1, 2, 3)",
        (VOLUME,),
    )
    db.execute(
        "CREATE TEMP TABLE s AS SELECT a.study_ref, s.study_uid, s.accession_number,"
        " s.patient_name, s.patient_id, s.modality, s.station_name, a.n, a.ir, a.rec,"
        " a.ir - a.rec FROM (SELECT study_ref, count(DISTINCT object_id) AS n, sum(ir) AS ir,"
        " sum(good) AS rec FROM o GROUP BY study_ref) a"
        " JOIN studies s ON s.study_ref = a.study_ref ORDER BY 1"
    )
    studies, objects, ir, rec, none, fully = db.execute(
        "SELECT count(*), sum(n), sum(ir), sum(rec), sum(rec = 0), sum(rec = ir) FROM s"
    ).fetchone()
    own, loaded = db.execute(
        "SELECT v.carrier_id, c.loaded FROM volumes v JOIN carriers c USING (carrier_id)"
        " WHERE v.volume_ref = ?",
        (VOLUME,),
    ).fetchone()
    carriers = [(own, loaded, "damaged volume")] + [
        row
        for row in db.execute(
            "SELECT carrier_id, loaded, 'copies on ' || group_concat(volume_ref) FROM"
            " (SELECT DISTINCT v.carrier_id, c.loaded, v.volume_ref FROM o JOIN object_locations"
            " x ON x.object_id = o.object_id AND x.volume_ref <> ? AND x.state = 'A' JOIN volumes"
            " v ON v.volume_ref = x.volume_ref JOIN carriers c ON c.carrier_id = v.carrier_id"
            " WHERE (o.state IN ('R','S') OR o.ordinal < 0) AND NOT o.cached ORDER BY 1, 3)"
            " GROUP BY 1 ORDER BY 1",
            (VOLUME,),
        )
        if row[0] != own
    ]
    head = (
        "'STUDY ' || study_ref || '  objects ' || n || '  in recovery ' || ir"
        " || '  recoverable ' || rec || '  unrecoverable ' || (ir - rec) || char(10)"
        " || '  uid ' || study_uid"
        " || '  accession ' || accession_number || '  patient ' || patient_name"
        " || ' (' || patient_id || ')  ' || modality || ' at ' || station_name || char(10)"
    )
    where = f"CASE WHEN ordinal < 0 THEN '-' ELSE '{VOLUME}:' || ordinal || ':' || state END"
    line = (
        f"printf('  object %-10d %!-22s %s copies: %s', object_id, {where},"
        " CASE WHEN NOT ir THEN 'not affected ' WHEN good THEN 'recoverable  '"
        " ELSE 'UNRECOVERABLE' END,"
        " CASE copies WHEN '' THEN 'none' ELSE copies END) || char(10)"
    )

    def text() -> Iterator[str]:
        yield (
            f"PRE-RECOVERY ASSESSMENT of archive volume {VOLUME}\ngenerated {NOW}\n\n"
            f"Studies in recovery:   {studies}\n"
            f"  recoverable:         {studies - none} (at least one object recoverable;"
            f" {fully} fully)\n"
            f"  unrecoverable:       {none} (no recoverable object)\n"
            f"Objects of these studies: {objects}\nObjects in recovery:   {ir}\n"
            f"  recoverable:         {rec}\n  unrecoverable:       {ir - rec}\n\n"
            'Each study lists all its objects: "objects" counts them all, "in recovery" those\n'
            f"whose location on {VOLUME} is in recovery. Locations are VOLUME:ORDINAL:STATE\n"
            f'(A good, R in recovery, S sent, F finished), "-" = none on {VOLUME};\n'
            '"cache" is a copy in the archive server\'s cache.\n\n'
        )
        for study, lines in _by_study(db, head, line):
            yield study[-1] + "".join(lines) + "\n"
        yield "Carriers to put online for the recovery attempt:\n" + "".join(
            f"  {c:<10} {'(loaded)  ' if ok else 'LOAD      '} {why}\n" for c, ok, why in carriers
        )

    part = (
        f"object_id || ' ' || {where} || ' copies '"
        " || CASE copies WHEN '' THEN 'none' ELSE replace(copies, ' ', '+') END"
    )
    header = (
        "study_ref,study_uid,accession_number,patient_name,patient_id,modality,station_name,"
        "objects,in_recovery,recoverable,unrecoverable,locations\n"
    )
    rows = ((*s[:11], "; ".join(parts)) for s, parts in _by_study(db, "NULL", part))
    total = [
        "TOTAL",
        *[""] * 6,
        objects,
        ir,
        rec,
        ir - rec,
        f"{studies} studies, {studies - none} recoverable",
    ]
    tail = [total, [], ["carrier_to_load", "loaded", "reason"]]
    tail += [[c, "yes" if ok else "no", why] for c, ok, why in carriers]
    _write(site / "reports" / "pre_report.txt", text())
    _write(
        site / "reports" / "pre_report.csv",
        itertools.chain([header], _csv_rows(rows), _csv_rows(tail)),
    )


def _raw_post(db: sqlite3.Connection, site: Path) -> None:
    db.execute(
        "CREATE TEMP TABLE agg AS SELECT o.study_ref AS study_ref, count(*) AS n,"
        " sum(EXISTS (SELECT 1 FROM cached_objects c WHERE c.object_id = l.object_id) OR EXISTS"
        " (SELECT 1 FROM object_locations x WHERE x.object_id = l.object_id"
        "  AND x.volume_ref <> l.volume_ref AND x.state = 'A')) AS rec,"
        " sum(l.state IN ('S','F') AND EXISTS (SELECT 1 FROM"
        " cached_objects c WHERE c.object_id = l.object_id)) AS got,"
        " EXISTS (SELECT 1 FROM send_jobs j WHERE j.study_ref = o.study_ref"
        "  AND j.volume_ref = ?) AS done"
        " FROM object_locations l JOIN objects o ON o.object_id = l.object_id"
        " WHERE l.volume_ref = ? AND l.state IN ('R','S','F') GROUP BY o.study_ref",
        (VOLUME, VOLUME),
    )
    t = db.execute(
        "SELECT count(*), sum(done), sum(done AND got >= n), sum(done AND got > 0 AND got < n),"
        " sum(done AND got = 0), sum(n), sum(rec), sum(got) FROM agg"
    ).fetchone()
    rows = (
        "SELECT {} FROM (SELECT CASE WHEN NOT a.done THEN '' WHEN a.got >= a.n THEN"
        " 'fully recovered' WHEN a.got > 0 THEN 'partially recovered' ELSE 'unrecoverable' END"
        " AS status, a.study_ref, a.n, a.rec, CASE WHEN a.done THEN a.got ELSE 0 END AS got,"
        " s.study_uid, s.accession_number, s.patient_name, s.patient_id, s.modality,"
        " s.station_name FROM temp.agg a JOIN studies s ON s.study_ref = a.study_ref"
        " ORDER BY a.study_ref)"
    )
    line = (
        "printf('%!-20s %!-12s %7d %11d %9d  %s', status, study_ref, n, rec, got, study_uid"
        " || ' / ' || accession_number || ' / ' || patient_name || ' / ' || patient_id || ' / '"
        " || modality || ' / ' || station_name) || char(10)"
    )
    head = (
        f"POST-RECOVERY ASSESSMENT of archive volume {VOLUME}\ngenerated {NOW}\n\n"
        f"{'status':<20} {'study_ref':<12} {'objects':>7} {'recoverable':>11} "
        f"{'recovered':>9}  study_uid / accession / patient / patient_id / modality / station\n"
    )
    totals = (
        f"\nTotals\n  studies in recovery:  {t[0]}\n  studies processed:    {t[1]}\n"
        f"  fully recovered:      {t[2]}\n  partially recovered:  {t[3]}\n"
        f"  unrecoverable:        {t[4]}\n  not processed yet:    {t[0] - t[1]}\n"
        f"  objects: {t[5]}, recoverable {t[6]}, recovered so far {t[7]}\n"
    )
    cursor = db.execute(rows.format(line))
    body = ("".join(r[0] for r in batch) for batch in iter(lambda: cursor.fetchmany(1000), []))
    _write(site / "reports" / "post_report.txt", itertools.chain([head], body, [totals]))
    columns = [
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
    ]
    tail = [
        [],
        [
            "total",
            "studies_processed",
            "fully_recovered",
            "partially_recovered",
            "unrecoverable",
            "not_processed",
        ],
        ["", t[1], t[2], t[3], t[4], t[0] - t[1]],
    ]
    _write(
        site / "reports" / "post_report.csv",
        itertools.chain(
            [_csv_line(columns)], _csv_rows(db.execute(rows.format("*"))), _csv_rows(tail)
        ),
    )


if __name__ == "__main__":
    raise SystemExit(main())
