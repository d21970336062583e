"""kill -9 in the middle of repair or reload, run again: the same end state as a
run that was never interrupted (real subprocesses, RECOVER_CRASH_AT)."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from runner.procedures.keyed_file.media import Control, KeyDescriptor, leaf_capacity
from tests.helpers import PROJECT_ROOT
from tests.procedures.keyed_file.conftest import NOW, PLAYBOOK, SiteMaker, digest, steps
from tests.procedures.keyed_file.readback import keys_match_records, read_pair

RECORDS = 3_000


def _run(site: Path, crash_at: str | None = None) -> subprocess.CompletedProcess[str]:
    scratch = site.parent / "tmp"  # the sort's spill directory, per test
    scratch.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": str(PROJECT_ROOT),
        "RECOVER_NOW": NOW,
        "TMPDIR": str(scratch),
    }
    env.pop("RECOVER_CRASH_AT", None)
    if crash_at:
        env["RECOVER_CRASH_AT"] = crash_at
    return subprocess.run(
        [sys.executable, "-m", "runner", "-q", "run", str(PLAYBOOK), "--site", str(site), "--yes"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _new_leaves(valid: int, lengths: tuple[int, ...]) -> int:
    """Leaves the reload writes (fill 90%), i.e. its progress items per key."""
    control = Control(8, 64, False, 0, 0, "", ())
    total = 0
    for length in lengths:
        cap = max(2, leaf_capacity(control, KeyDescriptor(0, length, True, 0)) * 90 // 100)
        total += max(1, math.ceil(valid / cap))
    return total


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    """One damaged site, and the end state of an uninterrupted run on a copy of it."""
    from runner.procedures.keyed_file.world import Options, generate

    base = tmp_path_factory.mktemp("keyed-resume")
    scenario = generate(
        base / "pristine",
        Options(records=RECORDS, damage=("eof", "dangling", "split", "missing"), seed=21),
    )
    shutil.copytree(base / "pristine", base / "reference")
    done = _run(base / "reference")
    assert done.returncode == 0, done.stderr
    return base, scenario


def _crash_points(scenario: dict[str, object]) -> dict[str, str]:
    want = scenario["expected"]  # type: ignore[index]
    blocks = sum(k["blocks"] for k in want["keys"])
    chunk = 1  # 3,000 records of 65 bytes: one 1 MiB chunk
    leaves = _new_leaves(want["valid_records"], (10, 12, 8))
    sorts = 3  # each key's in-memory sort is one progress item before its leaves
    return {
        "repair, reading the data file": "repair:1",
        "repair, walking the last key": f"repair:{chunk + blocks - 3}",
        "repair, data file replaced, key file not": f"repair:{chunk + blocks + 1}",
        "reload, building the new trees": f"reload:{chunk + leaves // 2}",
        "reload, new data file swapped in, key file not": f"reload:{chunk + sorts + leaves + 1}",
    }


@pytest.mark.parametrize(
    "where",
    [
        "repair, reading the data file",
        "repair, walking the last key",
        "repair, data file replaced, key file not",
        "reload, building the new trees",
        "reload, new data file swapped in, key file not",
    ],
)
def test_kill_and_resume_ends_like_an_uninterrupted_run(
    reference: tuple[Path, dict[str, object]], make_site: SiteMaker, tmp_path: Path, where: str
) -> None:
    base, scenario = reference
    site = tmp_path / "site"
    shutil.copytree(base / "pristine", site)
    killed = _run(site, _crash_points(scenario)[where])
    assert killed.returncode == -9, (killed.returncode, killed.stderr)
    files = site / "files"
    if where == "repair, data file replaced, key file not":
        half = read_pair(files / "customers.dat", files / "customers.key")
        assert half.fs_eof == half.keyed_eof and half.crashed
    if where == "reload, new data file swapped in, key file not":
        assert (files / "customers.dat.bak").exists() and (files / "customers.key.new").exists()
        assert not (files / "customers.dat.new").exists()
    spills = list((tmp_path / "tmp").glob("recover-keyed-sort-*"))
    assert bool(spills) == (where == "reload, building the new trees")
    again = _run(site)
    assert again.returncode == 0, again.stderr
    assert list((tmp_path / "tmp").glob("recover-keyed-sort-*")) == [], "stale spills kept"
    assert digest(site, under="files") == digest(base / "reference", under="files")
    assert digest(site, under="reports") == digest(base / "reference", under="reports")
    ours, theirs = steps(site), steps(base / "reference")
    for step in ("repair", "reload", "count"):
        assert ours[step]["outputs"] == theirs[step]["outputs"], step
        assert ours[step]["changes"] == theirs[step]["changes"], step
    pair = read_pair(site / "files" / "customers.dat", site / "files" / "customers.key")
    assert keys_match_records(pair) and not pair.crashed
