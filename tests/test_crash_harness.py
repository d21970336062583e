"""The crash harness: every shipped playbook, killed anywhere, resumes to the same end.

For each procedure a small site is generated and the shipped playbook run
once uninterrupted, listing every numbered crash point it passed
(`RECOVER_CRASH_POINTS`, runner/engine/crash.py): each progress item, each
media mutation (before and after every rename, move, removal, link and
rmdir, so inside every multi-file swap) and each commit. Points are then
chosen across the whole run: the first, the last, the swaps' renames, the
commits, and evenly between. A copy of the site is killed with SIGKILL at
each (`RECOVER_CRASH_AT=point:N`) and run again to the end; a double crash
kills the re-run too. Each end state is compared with the uninterrupted
run's: every catalog by content, every other file by hash (reports
included; a leftover temporary is a difference), links and directories, and
the journal's figures of every step (state, changes, loss, outputs, notes,
media summary, reports). Only the attempt's timings may differ.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import PLAYBOOKS_DIR, invoke, process_env, run_process

pytestmark = pytest.mark.slow

SINGLE_KILLS = 10  # kill points per procedure
DOUBLE_KILLS = 2  # runs killed, then killed again while resuming
#: journal fields of a step that say when and how often it ran, and where its
#: last checkpoint was (a resumed step checkpoints at other places)
TIMINGS = {"seconds", "attempts", "started_at", "finished_at", "state_data"}


@dataclass(frozen=True)
class Procedure:
    """A shipped playbook on a small generated site, with the clock its world assumes."""

    playbook: str
    world: tuple[str, ...]
    now: str
    params: tuple[str, ...] = ()
    params_from_scenario: dict[str, str] = field(default_factory=dict)


PROCEDURES = {
    "archive_volume": Procedure(
        "archive-volume-recovery.yaml",
        ("archive", "--seed", "3", "--studies", "40"),
        "2026-01-02T03:04:05+00:00",
        ("max_jobs=3",),
    ),
    "pool_containers": Procedure(
        "pool-container-fix.yaml",
        ("pools", "--seed", "7", "--elements", "20"),
        "2026-01-15T12:00:00+00:00",
        ("batch_size=3",),
        {"since": "window"},
    ),
    "case_archive": Procedure(
        "case-archive.yaml", ("cases", "--seed", "7"), "2026-03-10T20:00:00+00:00"
    ),
    "roll_forward": Procedure(
        "roll-forward.yaml",
        ("rollforward", "--seed", "5", "--transactions", "60", "--rows", "10"),
        "2026-01-06T09:00:00+00:00",
    ),
    "keyed_file": Procedure(
        "keyed-file-repair.yaml",
        ("keyed", "--seed", "5", "--records", "600", "--damage", "eof,dangling,missing"),
        "2026-01-02T03:04:05+00:00",
    ),
}


@dataclass
class Reference:
    """A procedure's generated site (never run) and its uninterrupted run."""

    procedure: Procedure
    pristine: Path
    done: Path
    labels: list[str]  # the crash points the uninterrupted run passed, in order
    params: list[str]

    def run(self, site: Path, **env: str) -> int:
        args: list[str] = ["-q", "run", str(PLAYBOOKS_DIR / self.procedure.playbook)]
        args += ["--site", str(site), "--yes"]
        for param in self.params:
            args += ["--param", param]
        result = run_process(
            *args,
            env=process_env(RECOVER_EXTRA_PROCEDURES="", RECOVER_NOW=self.procedure.now, **env),
            timeout=120,
        )
        assert result.returncode in (0, -9), result.stderr
        return result.returncode

    def copy(self, where: Path) -> Path:
        shutil.copytree(self.pristine, where, symlinks=True)
        return where


class References:
    """Each procedure's reference, built on first use (a -k run builds only its own)."""

    def __init__(self, tmp: pytest.TempPathFactory) -> None:
        self._tmp = tmp
        self._made: dict[str, Reference] = {}

    def __getitem__(self, name: str) -> Reference:
        if name not in self._made:
            self._made[name] = _reference(name, self._tmp.mktemp(name))
        return self._made[name]


@pytest.fixture(scope="module")
def references(tmp_path_factory: pytest.TempPathFactory) -> References:
    return References(tmp_path_factory)


def _reference(name: str, tmp: Path) -> Reference:
    procedure = PROCEDURES[name]
    pristine = tmp / "pristine"
    made = invoke("world", procedure.world[0], pristine, *procedure.world[1:])
    assert made.exit_code == 0, made.output
    scenario = json.loads((pristine / "scenario.json").read_text())
    params = list(procedure.params) + [
        f"{param}={scenario[key]}" for param, key in procedure.params_from_scenario.items()
    ]
    reference = Reference(procedure, pristine, tmp / "done", [], params)
    reference.copy(reference.done)
    tally = tmp / "points.txt"
    assert reference.run(reference.done, RECOVER_CRASH_POINTS=str(tally)) == 0
    reference.labels = tally.read_text().splitlines()
    assert len(reference.labels) > SINGLE_KILLS, reference.labels
    return reference


def choose_points(labels: list[str], count: int) -> list[int]:
    """`count` distinct 1-based points spread over the run: first and last, the
    renames of multi-file swaps and other removals, the commits, then evenly."""
    total = len(labels)

    def spread(points: list[int], share: int) -> list[int]:
        if len(points) <= share:
            return points
        return [points[round(i * (len(points) - 1) / max(share - 1, 1))] for i in range(share)]

    swaps = [n for n, label in enumerate(labels, 1) if label.startswith(_SWAP_OPS)]
    commits = [n for n, label in enumerate(labels, 1) if label.startswith(("commit", "checkpoint"))]
    chosen: list[int] = []
    for candidate in [1, total, *spread(swaps, count // 3), *spread(commits, count // 4)]:
        if candidate not in chosen and len(chosen) < count:
            chosen.append(candidate)
    while len(chosen) < count:  # then the point farthest from every chosen one
        chosen.append(max(range(1, total + 1), key=lambda n: (min(abs(n - c) for c in chosen), -n)))
    return chosen


_SWAP_OPS = ("media move", "media remove", "media rmdir", "media symlink")


def end_state(site: Path) -> dict[str, Any]:
    """Everything a run leaves that an operator would compare, timings aside."""
    files: dict[str, Any] = {}
    for path in sorted(site.rglob("*")):
        rel = path.relative_to(site).as_posix()
        if rel == ".recover" or rel.startswith(".recover/"):
            continue
        if path.is_symlink():
            files[rel] = f"link -> {os.readlink(path)}"
        elif path.is_dir():
            files[rel] = "dir"
        elif path.suffix == ".sqlite":
            files[rel] = _catalog_content(path)
        else:
            files[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    status = invoke("status", "--site", site, "--json")
    assert status.exit_code == 0, status.output
    run = json.loads(status.stdout)["runs"][0]
    steps = {
        f"{step['step_id']}.{key}": value
        for step in run["steps"]
        for key, value in step.items()
        if key not in TIMINGS
    }
    return {"files": files, "run state": run["state"], "steps": steps}


def _catalog_content(path: Path) -> dict[str, Any]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        schema = conn.execute(
            "SELECT type, name, sql FROM sqlite_master ORDER BY type, name"
        ).fetchall()
        tables = [name for kind, name, _ in schema if kind == "table"]
        rows = {t: sorted(map(repr, conn.execute(f'SELECT * FROM "{t}"'))) for t in tables}
        return {"schema": schema, "rows": rows}
    finally:
        conn.close()


def _differences(got: dict[str, Any], want: dict[str, Any]) -> list[str]:
    """What differs, one line each, for a readable failure."""
    out = []
    for part in ("files", "steps"):
        for key in sorted(set(got[part]) | set(want[part])):
            mine, theirs = got[part].get(key), want[part].get(key)
            if mine != theirs:
                out.append(f"{part} {key}: {mine!r:.300} != {theirs!r:.300}")
    if got["run state"] != want["run state"]:
        out.append(f"run state {got['run state']} != {want['run state']}")
    return out


@pytest.mark.parametrize("pick", range(SINGLE_KILLS))
@pytest.mark.parametrize("name", PROCEDURES)
def test_killed_anywhere_then_rerun_ends_as_uninterrupted(
    references: References, tmp_path: Path, name: str, pick: int
) -> None:
    reference = references[name]
    point = choose_points(reference.labels, SINGLE_KILLS)[pick]
    site = reference.copy(tmp_path / "site")
    assert reference.run(site, RECOVER_CRASH_AT=f"point:{point}") == -9
    assert reference.run(site) == 0
    where = f"killed at point {point} ({reference.labels[point - 1]})"
    assert _differences(end_state(site), end_state(reference.done)) == [], where


@pytest.mark.parametrize("pick", range(DOUBLE_KILLS))
@pytest.mark.parametrize("name", PROCEDURES)
def test_killed_again_while_resuming_then_rerun_ends_as_uninterrupted(
    references: References, tmp_path: Path, name: str, pick: int
) -> None:
    reference = references[name]
    total = len(reference.labels)
    first = total * (pick + 1) // (DOUBLE_KILLS + 1)
    # the re-run passes at least the points the first run did not reach
    second = max(1, (total - first) // 2)
    site = reference.copy(tmp_path / "site")
    assert reference.run(site, RECOVER_CRASH_AT=f"point:{first}") == -9
    assert reference.run(site, RECOVER_CRASH_AT=f"point:{second}") == -9
    assert reference.run(site) == 0
    where = f"killed at point {first} ({reference.labels[first - 1]}), then at {second}"
    assert _differences(end_state(site), end_state(reference.done)) == [], where


def test_points_are_chosen_across_the_run_and_through_every_swap() -> None:
    labels = ["progress a x"] * 40 + ["media move a -> b before", "media move a -> b after"]
    labels += ["commit a before", "commit a after"] + ["progress b y"] * 56
    chosen = choose_points(labels, 10)
    assert len(set(chosen)) == 10 and chosen[:2] == [1, 100]
    assert {41, 42} <= set(chosen)  # both sides of the rename
    assert 43 in chosen or 44 in chosen
    ordered = sorted(chosen)
    assert max(b - a for a, b in pairwise(ordered)) <= 25  # no wide gap
