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


def _run(
    site: Path, book: Path, crash: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("RECOVER_")}, **(env or {})}
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


MISSING_STAFF = """
  - id: close
    action: rollforward.set_flags
    args: {databases: [sales, stock], access: disabled, recovery: enabled}
  - id: restore
    action: rollforward.restore
    args: {databases: [sales, staff, stock]}
"""


def _restore_end(site: Path) -> dict[str, object]:
    """The databases by content, the kept damaged copies, and what restore said."""
    kept = sorted(p.name for p in site.glob("damaged/*"))
    conn = sqlite3.connect(site / ".recover" / "journal.sqlite")
    try:
        (notes, outputs) = conn.execute(
            "SELECT notes_json, outputs_json FROM recover_steps WHERE step_id = 'restore' "
            "ORDER BY rowid DESC LIMIT 1"
        ).fetchone()
    finally:
        conn.close()
    return {"outcomes": _outcomes(site), "kept": kept, "notes": notes, "outputs": outputs}


def test_a_restore_killed_after_copying_a_missing_database_in_keeps_no_damaged_copy_of_it(
    make_site, tmp_path: Path
) -> None:
    """A missing database is copied in from its backup; killed before the step
    commits, the re-run finds it there. It must still count as missing, not be
    kept as a damaged database (found by the crash harness's numbered points)."""
    book = write_playbook(tmp_path / "missing.yaml", MISSING_STAFF, "missing")
    clean = make_site(seed=43, transactions=60)
    (clean / "databases" / "staff.sqlite").unlink()
    tally = tmp_path / "points.txt"
    assert _run(clean, book, env={"RECOVER_CRASH_POINTS": str(tally)}).returncode == 0
    labels = tally.read_text().splitlines()
    inside = [n for n, label in enumerate(labels, 1) if "restore" in label or "damaged/" in label]
    assert any("databases/staff.sqlite" in label for label in labels)
    for point in inside:
        site = make_site(seed=43, transactions=60)
        (site / "databases" / "staff.sqlite").unlink()
        killed = _run(site, book, env={"RECOVER_CRASH_AT": f"point:{point}"})
        assert killed.returncode == -9, killed.stderr
        assert _run(site, book).returncode == 0
        assert _restore_end(site) == _restore_end(clean), labels[point - 1]
