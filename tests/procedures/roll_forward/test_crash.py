"""A roll forward killed with SIGKILL mid-replay and resumed ends identical."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import PROJECT_ROOT
from tests.procedures.roll_forward.conftest import (
    DEFAULT_DBS,
    NOW,
    PREPARE,
    assert_matches,
    recover_step,
    snapshot,
    write_playbook,
)


def _run(site: Path, book: Path, crash: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "RECOVER_CRASH_AT"}
    env["RECOVER_NOW"] = NOW
    if crash:
        env["RECOVER_CRASH_AT"] = crash
    return subprocess.run(
        [sys.executable, "-m", "runner", "-q", "run", str(book), "--site", str(site), "--yes"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _outcomes(site: Path) -> dict[str, list[tuple[object, ...]]]:
    out = {}
    for db in DEFAULT_DBS:
        conn = sqlite3.connect(site / "databases" / f"{db}.sqlite")
        try:
            out[db] = conn.execute("SELECT * FROM rf_recovery ORDER BY txn").fetchall()
        except sqlite3.OperationalError:  # killed before the first checkpoint
            out[db] = []
        out[db + ".flags"] = conn.execute("SELECT * FROM rf_flags").fetchall()
        conn.close()
    return out


def _readers_of(site: Path) -> list[int]:
    """Processes still running a roll forward of this site (a reader left behind)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(site).encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def _gone(site: Path) -> bool:
    deadline = time.monotonic() + 10
    while _readers_of(site) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not _readers_of(site)


@pytest.mark.parametrize("reader", ["inline", "process"])
def test_sigkill_mid_replay_then_resume_equals_uninterrupted(
    make_site, tmp_path: Path, reader: str
) -> None:
    steps = PREPARE + recover_step(
        checkpoint_records=300, batch_calls=40, chunk_records=64, reader=reader
    )
    book = write_playbook(tmp_path / "crash.yaml", steps, "crash")
    clean = make_site(seed=41, transactions=250)
    assert _run(clean, book).returncode == 0
    for crash_at in (3, 8, 19):
        site = make_site(seed=41, transactions=250)
        killed = _run(site, book, f"recover:{crash_at}")
        assert killed.returncode == -9, killed.stderr
        # a reader process notices its parent is gone (the pipe breaks) and ends
        assert Path("/proc").is_dir() is False or _gone(site)
        partial = _outcomes(site)
        assert partial != _outcomes(clean)  # really interrupted mid-replay
        resumed = _run(site, book)
        assert resumed.returncode == 0, resumed.stderr
        assert_matches(site)
        assert _outcomes(site) == _outcomes(clean)
        assert snapshot(site, "reports") == snapshot(clean, "reports")
