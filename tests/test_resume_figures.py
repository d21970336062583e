"""After any number of kills, a step's figures equal an uninterrupted run's: its
changes, its notes and its media summary (issue: a resumed attempt counted only
what it did itself)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import PLAYBOOKS_DIR, process_env, run_process

ARCHIVE = PLAYBOOKS_DIR / "archive-volume-recovery.yaml"


def _figures(site: Path) -> dict[str, Any]:
    done = run_process("status", "--site", site, "--json")
    steps = json.loads(done.stdout)["runs"][0]["steps"]
    return {
        s["step_id"]: {k: s[k] for k in ("state", "changes", "loss", "notes", "media", "outputs")}
        for s in steps
    }


@pytest.mark.slow
def test_archive_attempt_figures_survive_two_kills(tmp_path: Path) -> None:
    sites = {}
    for name in ("killed", "whole"):
        sites[name] = tmp_path / name
        made = run_process("world", "archive", sites[name], "--seed", "7", "--studies", "3000")
        assert made.returncode == 0, made.stderr
    env = process_env(RECOVER_EXTRA_PROCEDURES="")
    for point in ("100", "40"):
        killed = run_process(
            "run", ARCHIVE, "--site", sites["killed"], "--yes",
            env={**env, "RECOVER_CRASH_AT": f"attempt:{point}"},
        )  # fmt: skip
        assert killed.returncode == -9, killed.stderr
    for name in ("killed", "whole"):
        done = run_process("run", ARCHIVE, "--site", sites[name], "--yes", env=env)
        assert done.returncode == 0, done.stderr
    killed, whole = _figures(sites["killed"]), _figures(sites["whole"])
    assert killed["attempt"]["changes"]["object_locations"]["state R -> S"] > 0
    assert killed == whole
