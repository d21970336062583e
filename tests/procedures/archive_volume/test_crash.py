"""A run killed with SIGKILL in the middle of recovery_attempt, then re-run,
ends with the same catalog and cache as an uninterrupted run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import PROJECT_ROOT
from tests.procedures.archive_volume.conftest import (
    NOW,
    PLAYBOOK,
    catalog_rows,
    make_site,
    snapshot,
)


def _recover(site: Path, crash_at: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RECOVER_NOW": NOW, "PYTHONPATH": str(PROJECT_ROOT)}
    env.pop("RECOVER_CRASH_AT", None)
    if crash_at:
        env["RECOVER_CRASH_AT"] = crash_at
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "runner",
            "-q",
            "run",
            str(PLAYBOOK),
            "--site",
            str(site),
            "--yes",
            "--param",
            "max_jobs=3",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_sigkill_mid_recovery_then_rerun_equals_uninterrupted(tmp_path: Path) -> None:
    plain, scenario = make_site(tmp_path / "plain", studies=120, damage_ranges=4)
    crashed, _ = make_site(tmp_path / "crashed", studies=120, damage_ranges=4)
    assert len(scenario["studies"]) > 8  # several batches of 3 jobs

    done = _recover(plain)
    assert done.returncode == 0, done.stderr
    # 7 SEND jobs in: batches 1 and 2 are committed, batch 3 is half done.
    killed = _recover(crashed, crash_at="attempt:7")
    assert killed.returncode == -9, (killed.returncode, killed.stderr)
    jobs = catalog_rows(crashed)["send_jobs"]
    assert len(jobs) == 6  # the two checkpointed batches survived the kill
    resumed = _recover(crashed)
    assert resumed.returncode == 0, resumed.stderr

    assert catalog_rows(crashed) == catalog_rows(plain)
    files = {k: v for k, v in snapshot(crashed).items() if k != "catalog.sqlite"}
    assert files == {k: v for k, v in snapshot(plain).items() if k != "catalog.sqlite"}
    again = _recover(crashed)
    assert again.returncode == 0 and catalog_rows(crashed) == catalog_rows(plain)
