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
print(time.perf_counter() - started, usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


@dataclass(frozen=True)
class Measured:
    seconds: float  # wall time of the child, start-up included
    rss_kib: int  # the child's peak resident set
    exit_code: int
    stderr: str  # its last 3,000 characters

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
    seconds, rss, code = done.stdout.split()
    result = Measured(float(seconds), int(rss), int(code), done.stderr[-3000:])
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
