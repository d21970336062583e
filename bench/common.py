"""What every benchmark needs: run a child, measure its wall time and peak RSS.

Peak RSS is read with wait4 in a small helper process rather than in the
benchmark itself: a child started (vfork + exec) straight from a process
reports that process's own RSS high-water mark as its ru_maxrss when that is
higher (Linux carries it over at exec), so after the benchmark has read big
files the runner's figure would be hidden. The helper's children start clean.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_MEASURE = """
import os, subprocess, sys, time
started = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
print(time.perf_counter() - started, usage.ru_maxrss, os.waitstatus_to_exitcode(status),
      usage.ru_utime + usage.ru_stime)
"""


@dataclass(frozen=True)
class Measured:
    seconds: float  # wall time of the child, start-up included
    rss_kib: int  # the child's peak resident set
    exit_code: int
    stderr: str  # its last 3,000 characters
    cpu_seconds: float = 0.0  # user + system CPU time: what other load on the machine
    # inflates much less than the wall time

    @property
    def rss_mb(self) -> float:
        return self.rss_kib / 1024


def child_env(**extra: str) -> dict[str, str]:
    """Children run like an installed tool: from cached bytecode (an environment with
    PYTHONDONTWRITEBYTECODE would recompile every runner module at each start)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **extra}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def recover(*args: str | int | Path) -> list[str]:
    """The command line of `recover -q ARGS` with this interpreter."""
    return [sys.executable, "-m", "runner", "-q", *map(str, args)]


def measure(command: list[str], env: dict[str, str] | None = None, check: bool = True) -> Measured:
    """Run `command` and return its wall seconds and peak RSS; stop the benchmark
    with its error output if it fails and `check` is set."""
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, *command],
        cwd=ROOT,
        env=env if env is not None else child_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    seconds, rss, code, cpu = done.stdout.split()
    result = Measured(float(seconds), int(rss), int(code), done.stderr[-3000:], float(cpu))
    if check and result.exit_code != 0:
        raise SystemExit(f"{' '.join(command)} failed ({code}):\n{result.stderr}")
    return result


def step_seconds(site: Path, step_id: str) -> float:
    """A step's own time as the runner's journal recorded it (checks + work)."""
    with sqlite3.connect(site / ".recover" / "journal.sqlite") as db:
        row = db.execute(
            "SELECT seconds FROM recover_steps WHERE step_id = ? ORDER BY rowid DESC LIMIT 1",
            (step_id,),
        ).fetchone()
    if row is None:
        raise SystemExit(f"no journal record of step {step_id!r} in {site}")
    return float(row[0])


# -- the summary table ---------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """One line of bench/run.py's summary: a runner time against its strong baseline.

    `same` says whether the runner's output and the baseline's were compared and
    found identical (catalogs by content, files by hash): a ratio against a baseline
    that did different work means nothing, so a row with `same` False fails.
    """

    bench: str  # the bench module's short name, e.g. "roll_forward"
    what: str  # the work and size, e.g. "recover 1.1M records"
    runner_s: float
    baseline_s: float
    limit: float  # the target: runner_s / baseline_s at most this
    same: bool = True
    note: str = ""  # e.g. what the baseline is, or "extra row" for a non-headline ratio

    @property
    def ratio(self) -> float:
        return self.runner_s / self.baseline_s if self.baseline_s > 0 else float("inf")

    @property
    def passed(self) -> bool:
        return self.same and self.ratio <= self.limit


#: Every Target the benches in this process recorded, in order (bench/run.py prints them).
TARGETS: list[Target] = []


def record(target: Target) -> Target:
    """Add a row to the summary table and print it at once (a bench run alone shows it)."""
    TARGETS.append(target)
    verdict = "pass" if target.passed else "FAIL"
    print(
        f"target [{target.bench}] {target.what}: runner {target.runner_s:.2f}s / baseline "
        f"{target.baseline_s:.2f}s = {target.ratio:.2f}x (limit {target.limit:g}x, same output: "
        f"{target.same}) {verdict}",
        flush=True,
    )
    return target


def summary_table(targets: list[Target]) -> str:
    """The one table of every ratio against the strong baselines, pass or fail each."""
    lines = [
        f"{'bench':<15} {'work':<52} {'runner s':>9} {'base s':>8} {'ratio':>6} "
        f"{'limit':>6} {'same':>5} {'result':>6}"
    ]
    for t in targets:
        lines.append(
            f"{t.bench:<15} {t.what:<52} {t.runner_s:>9.2f} {t.baseline_s:>8.2f} "
            f"{t.ratio:>6.2f} {t.limit:>5g}x {'yes' if t.same else 'NO':>5} "
            f"{'pass' if t.passed else 'FAIL':>6}"
        )
    failed = sum(not t.passed for t in targets)
    lines.append(f"{len(targets) - failed} of {len(targets)} targets met")
    return "\n".join(lines)
