"""Benchmark: `recover validate` on each shipped playbook, the whole process.

    python bench/bench_validate_playbooks.py [--scale 1.0] [--runs 5]

`recover validate` runs in editors and on every commit, so a whole process
(interpreter start, imports, registry, checks) must stay under 0.25 s per
playbook. Each shipped playbook is validated `--runs` times (more at a larger
--scale) in a subprocess; the best and the median wall time are printed, with
a bare `python -c pass` start as the floor no command can go below. Exits 1
when a median passes the target.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import Target, measure, record, recover  # noqa: E402

TARGET_SECONDS = 0.25


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies --runs")
    parser.add_argument("--runs", type=int, default=5, help="runs per playbook")
    args = parser.parse_args(argv)
    runs = max(1, round(args.runs * args.scale))
    floor = [measure([sys.executable, "-c", "pass"]).seconds for _ in range(runs)]
    print(f"python start (floor): best {min(floor):.3f}s, median {statistics.median(floor):.3f}s")
    worst = 0.0
    for playbook in sorted((ROOT / "playbooks").glob("*.yaml")):
        times = [measure(recover("validate", playbook)).seconds for _ in range(runs)]
        median = statistics.median(times)
        worst = max(worst, median)
        record(
            Target(
                "validate_playbooks",
                f"validate {playbook.name} (median of {runs})",
                median,
                TARGET_SECONDS,
                1.0,
                note=f"bound: {TARGET_SECONDS} s per playbook, the whole process",
            )
        )
        verdict = "ok" if median < TARGET_SECONDS else f"OVER {TARGET_SECONDS}s"
        print(
            f"validate {playbook.name:32} best {min(times):.3f}s  median {median:.3f}s  {verdict}"
        )
    print(f"worst median {worst:.3f}s (target < {TARGET_SECONDS}s per playbook)")
    return 0 if worst < TARGET_SECONDS else 1


if __name__ == "__main__":
    raise SystemExit(main())
