"""Benchmark: start-up of `recover --help` and `recover validate ONE.yaml`.

    python bench/bench_startup.py [--scale 1.0] [--repeats 15]

Times each command as a whole process, the best of several runs taking turns
(start-up noise only ever adds time), against `python -c pass` measured in the same
run: the baseline is the interpreter's own start-up, which no Python tool
can beat, so the difference is what the runner adds. Target: under 0.15 s
for both. The children run from cached bytecode, like an installed tool.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import Target, child_env, record  # noqa: E402

TARGET_SECONDS = 0.15
PLAYBOOK = ROOT / "playbooks" / "archive-volume-recovery.yaml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="more repeats when larger")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    repeats = max(3, int(args.repeats * args.scale))
    env = child_env()
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "runner")], check=True)
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "recover --help": [sys.executable, "-m", "runner", "--help"],
        f"recover validate {PLAYBOOK.name}": [
            sys.executable,
            "-m",
            "runner",
            "validate",
            str(PLAYBOOK),
        ],
    }
    best = _best(commands, env, repeats)
    base = best.pop("python -c pass")
    print(f"best of {repeats}: python -c pass {base:.3f} s (the baseline)")
    print(f"{'command':<48} {'seconds':>8} {'start-up':>9} {'ratio':>6}  target")
    failed = 0
    for name, seconds in best.items():
        added = seconds - base
        ok = added < TARGET_SECONDS
        failed += not ok
        record(
            Target(
                "startup",
                f"{name} start-up",
                seconds,
                base + TARGET_SECONDS,
                1.0,
                note=f"baseline: python -c pass + {TARGET_SECONDS} s",
            )
        )
        print(
            f"{name:<48} {seconds:>8.3f} {added:>9.3f} {seconds / base:>6.1f}  "
            f"< {TARGET_SECONDS} s {'PASS' if ok else 'FAIL'}"
        )
    return 1 if failed else 0


def _best(commands: dict[str, list[str]], env: dict[str, str], repeats: int) -> dict[str, float]:
    """The best time of each command, the commands taking turns (a machine whose
    load changes then weighs on all of them alike)."""
    best = dict.fromkeys(commands, float("inf"))
    for _ in range(repeats):
        for name, command in commands.items():
            started = time.perf_counter()
            subprocess.run(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, check=True)
            best[name] = min(best[name], time.perf_counter() - started)
    return best


if __name__ == "__main__":
    raise SystemExit(main())
