"""Run every benchmark: `python bench/run.py [--scale X] [NAME ...]`.

Each bench/bench_<name>.py times the runner against a strong baseline (what
an expert would write by hand for the same work and output) measured in the
same run, prints its detail, and records its targets with bench.common.record.
After all of them this prints ONE table of every target: ratio, limit, whether
the outputs matched, pass or fail. `--scale` shrinks (or grows) every
benchmark's default size, e.g. --scale 0.1 for a quick look. The exit code is
1 if any target failed or any bench failed.

The start-up benches (whole processes of a tenth of a second) run first, the
heavy ones after them in name order: on a virtual machine, memory a bench
has freed is handed back to the host, and for a while after a bench that
churned gigabytes every new process pays for touching it afresh (here about
5 microseconds a page: 30-40 ms on a `recover validate`, a quarter of it).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIRST = ("startup", "validate_playbooks", "validate")  # quick and noise-sensitive


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help="only these benchmarks (e.g. archive_volume)")
    parser.add_argument("--scale", type=float, default=1.0, help="size multiplier")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE.parent))
    from bench.common import TARGETS, summary_table

    found = sorted(HERE.glob("bench_*.py"), key=_order)
    chosen = [p for p in found if not args.names or p.stem.removeprefix("bench_") in args.names]
    if not chosen:
        print("no benchmark matched; have: " + ", ".join(p.stem for p in found))
        return 2
    worst = 0
    for path in chosen:
        settle()
        print(f"\n##### {path.stem} (scale {args.scale})", flush=True)
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        started = time.perf_counter()
        code = module.main(["--scale", str(args.scale)])
        print(f"##### {path.stem}: exit {code}, {time.perf_counter() - started:.1f}s", flush=True)
        worst = max(worst, code or 0)
    print(f"\n##### summary (scale {args.scale}; load: {load()})")
    print(summary_table(TARGETS))
    if not all(t.passed for t in TARGETS):
        worst = max(worst, 1)
    return worst


def _order(path: Path) -> tuple[int, str]:
    name = path.stem.removeprefix("bench_")
    return (FIRST.index(name) if name in FIRST else len(FIRST), name)


def settle(seconds: float = 3.0) -> None:
    """Let the previous bench's work end before the next one starts: its dirty
    pages written out (a bench that wrote gigabytes leaves the kernel flushing
    them for seconds, which slowed the next bench's sub-second processes by a
    third) and a pause for what it freed to be handed back."""
    os.sync()
    time.sleep(seconds)


def load() -> str:
    """The load average while measuring: other work on the machine skews ratios."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


if __name__ == "__main__":
    raise SystemExit(main())
