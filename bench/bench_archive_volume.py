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
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
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
    print("interpreter start; the runner also imports click/jinja/jsonschema/loguru: ~0.3s);")
    print("in-process = the step's journal time vs the baseline's SQL + report time.\n")
    print(
        f"{'catalog':>8} {'locations':>10} {'op':>5} {'runner s':>9} {'raw s':>7} "
        f"{'ratio':>6} {'step s':>7} {'SQL s':>7} {'ratio':>6} {'runner RSS MB':>14}"
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
                f"{r / b:>6.2f} {st:>7.2f} {wk:>7.2f} {st / wk:>6.2f} {rss / 1024:>14.1f}"
            )
    small, large = results
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
        [
            sys.executable,
            "-m",
            "runner",
            "-q",
            "world",
            "archive",
            str(site),
            "--studies",
            str(studies),
            "--media",
            "none",
            "--seed",
            "11",
        ],
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
        runner[op], rss[op] = _timed(
            [
                sys.executable,
                "-m",
                "runner",
                "-q",
                "run",
                str(playbook),
                "--site",
                str(site),
                "--yes",
            ]
        )
        step[op] = _step_seconds(site, op)
        rawt[op], raw_rss[op] = _timed(
            [sys.executable, str(Path(__file__).resolve()), "--baseline", op, str(raw)]
        )
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
        "step": step,
        "work": sql,
    }


def _step_seconds(site: Path, op: str) -> float:
    """The step's own time as the runner's journal recorded it (checks + work)."""
    with sqlite3.connect(site / ".recover" / "journal.sqlite") as db:
        row = db.execute(
            "SELECT seconds FROM recover_steps WHERE step_id = ? ORDER BY rowid DESC LIMIT 1",
            (op,),
        ).fetchone()
    return float(row[0])


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


def _timed(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one subprocess."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with exit {proc.returncode}")
    return elapsed, usage.ru_maxrss


def _same_results(site: Path, raw: Path) -> None:
    """The runner and the baseline must have done the same work."""
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
    for report in ("pre_report.csv", "post_report.csv"):
        ours = (site / "reports" / report).read_text().count("\n")
        theirs = (raw / "reports" / report).read_text().count("\n")
        assert abs(ours - theirs) <= 8, (report, ours, theirs)


# -- the hand-written baseline ------------------------------------------------
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


_GOOD_ELSEWHERE = (
    "(EXISTS (SELECT 1 FROM cached_objects c WHERE c.object_id = l.object_id) OR EXISTS"
    " (SELECT 1 FROM object_locations x WHERE x.object_id = l.object_id"
    "  AND x.volume_ref <> l.volume_ref AND x.state = 'A'))"
)


def _raw_pre(db: sqlite3.Connection, site: Path) -> None:
    db.execute(
        "CREATE TEMP TABLE agg AS SELECT o.study_ref AS study_ref, count(*) AS n,"
        f" sum({_GOOD_ELSEWHERE}) AS rec FROM object_locations l JOIN objects o"
        " ON o.object_id = l.object_id WHERE l.volume_ref = ? AND l.state IN ('R','S','F')"
        " GROUP BY o.study_ref",
        (VOLUME,),
    )
    rows = (
        "SELECT a.study_ref, a.n, a.rec, s.study_uid, s.accession_number, s.patient_name,"
        " s.patient_id, s.modality, s.station_name, l.object_id, l.ordinal, l.state,"
        " EXISTS (SELECT 1 FROM cached_objects c WHERE c.object_id = l.object_id),"
        " (SELECT group_concat(x.volume_ref || ':' || x.ordinal || ':' || x.state, ' ')"
        "  FROM object_locations x WHERE x.object_id = l.object_id AND x.volume_ref <> ?)"
        " FROM temp.agg a JOIN studies s ON s.study_ref = a.study_ref"
        " JOIN objects o ON o.study_ref = a.study_ref JOIN object_locations l"
        " ON l.object_id = o.object_id AND l.volume_ref = ? AND l.state IN ('R','S','F')"
        " ORDER BY a.study_ref, l.object_id"
    )
    carriers = db.execute(
        "SELECT DISTINCT v.carrier_id FROM object_locations l JOIN object_locations x"
        " ON x.object_id = l.object_id AND x.volume_ref <> l.volume_ref AND x.state = 'A'"
        " JOIN volumes v ON v.volume_ref = x.volume_ref WHERE l.volume_ref = ?"
        " AND l.state IN ('R','S') AND NOT EXISTS (SELECT 1 FROM cached_objects c"
        " WHERE c.object_id = l.object_id) ORDER BY 1",
        (VOLUME,),
    ).fetchall()
    with (site / "reports" / "pre_report.txt").open("w") as out:
        current = None
        for r in db.execute(rows, (VOLUME, VOLUME)):
            if r[0] != current:
                current = r[0]
                out.write(
                    f"\nSTUDY {r[0]}  objects {r[1]}  recoverable {r[2]}  "
                    f"unrecoverable {r[1] - r[2]}\n  uid {r[3]}  accession {r[4]}  "
                    f"patient {r[5]} ({r[6]})  {r[7]} at {r[8]}\n"
                )
            others = r[13] or ""
            good = r[12] or any(c.endswith(":A") for c in others.split(" ") if c)
            copies = (others + (" cache" if r[12] else "")).strip()
            location = f"{VOLUME}:{r[10]}:{r[11]}"
            out.write(
                f"  object {r[9]:<10} {location:<22} "
                f"{'recoverable  ' if good else 'UNRECOVERABLE'} copies: "
                f"{copies or 'none'}\n"
            )
        out.write("Carriers:\n" + "".join(f"  {c[0]}\n" for c in carriers))
    with (site / "reports" / "pre_report.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "study_ref",
                "study_uid",
                "accession_number",
                "patient_name",
                "patient_id",
                "modality",
                "station_name",
                "objects",
                "recoverable",
                "unrecoverable",
                "locations",
            ]
        )
        current, row, objects = None, None, []
        for r in db.execute(rows, (VOLUME, VOLUME)):
            if r[0] != current:
                if row:
                    writer.writerow([*row, "; ".join(objects)])
                current, objects = r[0], []
                row = [r[0], r[3], r[4], r[5], r[6], r[7], r[8], r[1], r[2], r[1] - r[2]]
            copies = "+".join(c for c in [*(r[13] or "").split(" "), "cache" if r[12] else ""] if c)
            objects.append(f"{r[9]} {VOLUME}:{r[10]}:{r[11]} copies {copies or 'none'}")
        if row:
            writer.writerow([*row, "; ".join(objects)])
        total = db.execute("SELECT count(*), sum(n), sum(rec) FROM temp.agg").fetchone()
        writer.writerow(["TOTAL", *[""] * 6, total[1], total[2], total[1] - total[2], total[0]])
        for c in carriers:
            writer.writerow([c[0]])


def _raw_post(db: sqlite3.Connection, site: Path) -> None:
    db.execute(
        "CREATE TEMP TABLE agg AS SELECT o.study_ref AS study_ref, count(*) AS n,"
        f" sum({_GOOD_ELSEWHERE}) AS rec, sum(l.state IN ('S','F') AND EXISTS (SELECT 1 FROM"
        " cached_objects c WHERE c.object_id = l.object_id)) AS got,"
        " EXISTS (SELECT 1 FROM send_jobs j WHERE j.study_ref = o.study_ref"
        "  AND j.volume_ref = ?) AS done"
        " FROM object_locations l JOIN objects o ON o.object_id = l.object_id"
        " WHERE l.volume_ref = ? AND l.state IN ('R','S','F') GROUP BY o.study_ref",
        (VOLUME, VOLUME),
    )
    rows = (
        "SELECT a.done, a.study_ref, a.n, a.rec, a.got, s.study_uid, s.accession_number,"
        " s.patient_name, s.patient_id, s.modality, s.station_name FROM temp.agg a"
        " JOIN studies s ON s.study_ref = a.study_ref ORDER BY a.study_ref"
    )

    def status(done: int, n: int, got: int) -> str:
        if not done:
            return ""
        return (
            "fully recovered" if got >= n else "partially recovered" if got else ("unrecoverable")
        )

    with (site / "reports" / "post_report.txt").open("w") as out:
        for r in db.execute(rows):
            out.write(
                f"{status(r[0], r[2], r[4]):<20} {r[1]:<12} {r[2]:>7} {r[3]:>11} "
                f"{r[4]:>9}  {' / '.join(r[5:])}\n"
            )
    with (site / "reports" / "post_report.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
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
        )
        for r in db.execute(rows):
            writer.writerow([status(r[0], r[2], r[4]), *r[1:]])
        totals = db.execute(
            "SELECT sum(done), sum(done AND got >= n), sum(done AND got > 0 AND got < n),"
            " sum(done AND got = 0) FROM temp.agg"
        ).fetchone()
        writer.writerow(["", *totals])


if __name__ == "__main__":
    raise SystemExit(main())
