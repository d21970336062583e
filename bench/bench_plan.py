"""Benchmark: `recover plan` vs the same steps' work rolled back, and vs `recover run`.

    python bench/bench_plan.py [--scale 1.0] [--repeats 2] [--keep DIR]

Builds a catalog-only archive site (`recover world archive --media none`) with
about 4 million object locations at scale 1, loses one volume, and times a
two-step playbook (mark_affected_locations, then pre_recovery_assessment with
its two reports) three ways, each a whole process from cached bytecode:

- `recover plan` on the site, which must change no byte of it (checked: the
  sha256 of every file before and after);
- the baseline, what an expert would write for a dry run of the same steps:
  the hand-written SQL of bench_archive_volume.py for both steps, on the live
  catalog, in one transaction that is rolled back (journal_mode=MEMORY and
  cache_spill=OFF, so it writes nothing either, and the plan's 64 MiB page
  cache, without which it takes 2.5x longer), the reports written to a
  scratch directory without fsync (a plan's reports are not durable), no copy
  of anything;
- `recover run` on an identical copy of the site, whose journal must record
  the very changes and loss the plan predicted.

Targets: plan at most 1.1x the baseline, and below the run. Peak RSS is printed
for each (the plan holds every page it changed in memory until its rollback).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import bench_archive_volume as archive  # noqa: E402
from bench.common import Measured, Target, child_env, measure, record, recover  # noqa: E402
from runner.engine.rehearsal import CACHE_KIB  # noqa: E402

STUDIES_AT_SCALE_1 = 288_000  # about 4.0 million object locations
STEPS = (("mark", "archive.mark_affected_locations"), ("pre", "archive.pre_recovery_assessment"))
PLAN_TARGET = 1.1  # plan / baseline at most


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="size multiplier (1 = ~4M)")
    parser.add_argument("--keep", type=Path, help="build the site here and keep it (and reuse it)")
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs of each")
    parser.add_argument("--baseline", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.baseline:
        return _baseline(args.baseline)
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(ROOT / "runner")], check=True, env=_env()
    )
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-plan-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        return _bench(work, max(200, int(STUDIES_AT_SCALE_1 * args.scale)), args.repeats)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def _bench(work: Path, studies: int, repeats: int) -> int:
    site = work / f"site-{studies}"
    if not (site / "catalog.sqlite").exists():
        started = time.perf_counter()
        subprocess.run(
            recover(
                "world", "archive", site, "--studies", studies, "--media", "none", "--seed", 11
            ),
            check=True,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            env=_env(),
        )
        print(f"site generated in {time.perf_counter() - started:.1f}s", flush=True)
    shutil.rmtree(site / ".recover", ignore_errors=True)
    shutil.rmtree(site / "reports", ignore_errors=True)
    with sqlite3.connect(site / "catalog.sqlite") as db:
        locations = db.execute("SELECT count(*) FROM object_locations").fetchone()[0]
    db.close()
    size_mb = (site / "catalog.sqlite").stat().st_size / 1e6
    print(f"{locations:,} object locations, catalog {size_mb:,.0f} MB", flush=True)
    playbook = _playbook(work)

    before = _digests(site)
    plan_json = work / "plan.json"
    ran_site = work / "run-site"
    results: dict[str, list[Measured]] = {"baseline": [], "plan": [], "run": []}
    for _ in range(repeats):  # interleaved, best of each: a loaded machine only adds time
        shutil.rmtree(work / "baseline-reports", ignore_errors=True)
        command = [sys.executable, str(Path(__file__).resolve()), "--baseline", str(site)]
        results["baseline"].append(measure(command, _env()))
        assert _digests(site) == before, "the baseline changed the site"
        results["plan"].append(
            measure(recover("plan", playbook, "--site", site, "-o", plan_json), _env())
        )
        assert _digests(site) == before, "recover plan changed the site"
        assert not (site / ".recover" / "journal.sqlite").exists()
        shutil.rmtree(ran_site, ignore_errors=True)
        shutil.copytree(site, ran_site)
        results["run"].append(
            measure(recover("run", playbook, "--site", ran_site, "--yes"), _env())
        )
        _same_prediction(json.loads(plan_json.read_text()), ran_site)
        _same_reports(work / "baseline-reports", ran_site / "reports")
        shutil.rmtree(ran_site, ignore_errors=True)
    base, planned, ran = (min(results[k], key=lambda m: m.seconds) for k in results)

    print(f"\nbest of {repeats}:\n{'':<10} {'seconds':>8} {'peak MB':>8}")
    for name, result in (("baseline", base), ("plan", planned), ("run", ran)):
        print(f"{name:<10} {result.seconds:>8.2f} {result.rss_mb:>8.0f}")
    ratio, versus_run = planned.seconds / base.seconds, planned.seconds / ran.seconds
    ok_base, ok_run = ratio <= PLAN_TARGET, versus_run < 1.0
    print(
        f"\nplan / baseline {ratio:.2f} (target <= {PLAN_TARGET}) "
        f"{'PASS' if ok_base else 'FAIL'}; plan / run {versus_run:.2f} (target < 1) "
        f"{'PASS' if ok_run else 'FAIL'}; site byte-identical after plan: yes"
    )
    locations_text = f"{locations / 1e6:.1f}M locations"
    record(
        Target(
            "plan",
            f"plan vs rolled-back SQL, {locations_text}",
            planned.seconds,
            base.seconds,
            PLAN_TARGET,
        )
    )
    record(
        Target(
            "plan",
            f"plan vs run, {locations_text}",
            planned.seconds,
            ran.seconds,
            1.0,
            note="plan below run",
        )
    )
    return 0 if ok_base and ok_run else 1


def _env() -> dict[str, str]:
    return child_env(RECOVER_NOW=archive.NOW)


def _playbook(work: Path) -> Path:
    path = work / "bench-plan.yaml"
    steps = [
        {"id": op, "action": action, "args": {"volume": archive.VOLUME}} for op, action in STEPS
    ]
    path.write_text(
        json.dumps(
            {
                "version": 1,
                "name": "bench-plan",
                "description": "benchmark",
                "site": {"root": ".", "catalog": "catalog.sqlite"},
                "steps": steps,
            }
        )
    )
    return path


def _digests(root: Path) -> dict[str, str]:
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            digest = hashlib.sha256()
            with path.open("rb") as handle:
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
            out[path.relative_to(root).as_posix()] = digest.hexdigest()
        else:
            out[path.relative_to(root).as_posix()] = "dir"
    return out


def _same_prediction(plan: dict[str, object], ran_site: Path) -> None:
    with sqlite3.connect(ran_site / ".recover" / "journal.sqlite") as db:
        rows = db.execute(
            "SELECT step_id, state, changes_json, loss_json FROM recover_steps"
        ).fetchall()
    db.close()
    done = {sid: (state, json.loads(c), json.loads(lo)) for sid, state, c, lo in rows}
    steps = plan["steps"]
    assert isinstance(steps, list)
    predicted = {s["id"]: ("done", s["changes"], s["loss"]) for s in steps}
    assert done == predicted, f"the run did {done}, the plan said {predicted}"


def _same_reports(baseline: Path, ran: Path) -> None:
    for name in ("pre_report.txt", "pre_report.csv"):
        assert (baseline / name).read_bytes() == (ran / name).read_bytes(), name


# -- the baseline: the same SQL, rolled back ------------------------------------------


def _baseline(site: Path) -> int:
    reports = site.parent / "baseline-reports"
    (reports / "reports").mkdir(parents=True, exist_ok=True)
    archive._write = _write_unsynced  # type: ignore[assignment]  # a plan's reports are scratch
    db = sqlite3.connect(site / "catalog.sqlite", isolation_level=None)
    db.execute("PRAGMA cache_spill=OFF")
    db.execute("PRAGMA journal_mode=MEMORY")
    db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")  # the same cache as the plan's
    db.execute("BEGIN IMMEDIATE")
    db.execute(
        "UPDATE studies SET archived_count = archived_count - m.n FROM"
        " (SELECT o.study_ref AS ref, count(*) AS n FROM object_locations l JOIN objects o"
        "  ON o.object_id = l.object_id WHERE l.volume_ref = ? AND l.state = 'A'"
        "  GROUP BY o.study_ref) m WHERE studies.study_ref = m.ref",
        (archive.VOLUME,),
    )
    db.execute(
        "UPDATE object_locations SET state = 'R' WHERE volume_ref = ? AND state = 'A'",
        (archive.VOLUME,),
    )
    archive._raw_pre(db, reports)
    db.execute("ROLLBACK")
    db.close()
    for name in ("pre_report.txt", "pre_report.csv"):
        os.replace(reports / "reports" / name, reports / name)
    return 0


def _write_unsynced(path: Path, chunks: Iterable[str]) -> None:
    with path.open("wb") as handle:
        for chunk in chunks:
            handle.write(chunk.encode())


if __name__ == "__main__":
    raise SystemExit(main())
