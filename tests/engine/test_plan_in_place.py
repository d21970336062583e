"""The dry run reads the live catalog in place: no copy, no byte written, even when
killed; WAL and hot-journal catalogs are copied instead; a step that replaces a
catalog file mid-plan is followed; the rare restart on copies gives the same plan."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from runner.engine import rehearsal as rehearsal_module
from runner.engine import session as session_module
from tests.helpers import (
    ROOT,
    SHIPPED_TOY_TEMPLATE,
    TOY_PLAYBOOK,
    catalog_rows,
    invoke,
    process_env,
    run_process,
    snapshot,
    steps_of,
)
from tests.toyproc import build_site

REPLACING_PLAYBOOK = """\
version: 1
name: toy-replace
description: mark, put the saved catalog back, mark again
site:
  root: site
  catalog: catalog.sqlite
safety:
  allow_loss: {items: 10}
steps:
  - id: offline
    action: toy.device
    args: {online: false}
  - id: mark
    action: toy.mark
    args: {batch: 7}
  - id: put_back
    action: toy.copy
    args: {src: saved.sqlite, dst: catalog.sqlite}
  - id: again
    action: toy.device
    args: {online: false}
  - id: mark_again
    action: toy.mark
    args: {batch: 7}
"""


def _copies(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the catalogs the plan copies from now on."""
    copied: list[str] = []
    real = session_module.copy_database

    def spy(source: Path, target: Path) -> None:
        copied.append(source.name)
        real(source, target)

    monkeypatch.setattr(session_module, "copy_database", spy)
    return copied


def _plan_json(playbook: Path, tmp_path: Path, name: str = "plan.json") -> dict[str, Any]:
    out = tmp_path / name
    result = invoke("plan", playbook, "-o", out)
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def _predicted(plan: dict[str, Any]) -> dict[str, Any]:
    return {s["id"]: (s["status"], s["changes"], s["loss"]) for s in plan["steps"]}


def test_a_plan_copies_no_catalog_and_leaves_no_file(
    toy_playbook: Path, toy_site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copied = _copies(monkeypatch)
    before = snapshot(toy_site)
    plan = _plan_json(toy_playbook, tmp_path)
    assert copied == []
    assert plan["steps"][1]["changes"] == {"items": {"state A -> X": 95, "deleted": 5}}
    assert snapshot(toy_site) == before
    # the scratch directory is gone too; what stays is the plans' turn (runner.engine.lock)
    left = [p.name for p in (tmp_path / "tmp").iterdir()]
    assert [name for name in left if not name.startswith("recover-plan-")] == []


@pytest.mark.slow
def test_kill_9_in_the_middle_of_a_plan_leaves_the_catalog_byte_identical(
    tmp_path: Path,
) -> None:
    # Enough rows that the changed pages outgrow SQLite's page cache (2 MB by
    # default): without cache_spill=OFF they would be written into the file.
    site = build_site(tmp_path / "site", items=400_000, bad=5)
    (site / "templates" / "toy").mkdir(parents=True)
    (site / "templates" / "toy" / "items.txt.j2").write_text(SHIPPED_TOY_TEMPLATE)
    playbook = tmp_path / "toy.yaml"
    playbook.write_text(TOY_PLAYBOOK, encoding="utf-8")
    before = snapshot(site)
    killed = run_process(
        "plan",
        playbook,
        "--param",
        "batch=5000",
        "--param",
        "lossy=5",
        env=process_env(RECOVER_CRASH_IN_PLAN="mark:390000"),
        timeout=240,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert snapshot(site) == before  # no byte changed, no -journal left beside it
    with sqlite3.connect(site / "catalog.sqlite") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT count(*) FROM items WHERE state = 'A'").fetchone() == (400_000,)
    conn.close()


def test_the_kill_hook_of_plans_fires_only_in_plans(tmp_path: Path, toy_env: None) -> None:
    site = build_site(tmp_path / "site")
    playbook = tmp_path / "toy.yaml"
    playbook.write_text(TOY_PLAYBOOK.replace(", report: reports/items.txt", ""))
    done = subprocess.run(
        [sys.executable, "-m", "runner", "run", str(playbook), "--yes"],
        env=process_env(RECOVER_CRASH_IN_PLAN="mark:1"),
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert steps_of(site)["mark"]["state"] == "done"


def _wal_site(site: Path) -> None:
    with sqlite3.connect(site / "catalog.sqlite") as conn:
        assert conn.execute("PRAGMA journal_mode=WAL").fetchone() == ("wal",)
    conn.close()


def _hot_journal_site(site: Path) -> None:
    """Leave catalog.sqlite with a hot journal: a writer killed mid-transaction
    after its cache spilled into the file (half its update is on disk)."""
    writer = (
        "import os, signal, sqlite3, sys\n"
        "conn = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "conn.execute('PRAGMA cache_size=1')\n"
        "conn.execute('BEGIN')\n"
        "conn.execute(\"UPDATE items SET state = 'Z'\")\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    subprocess.run([sys.executable, "-c", writer, str(site / "catalog.sqlite")], check=False)
    assert (site / "catalog.sqlite-journal").exists()


@pytest.mark.parametrize("damage", [_wal_site, _hot_journal_site])
def test_a_catalog_that_reading_would_write_is_planned_on_a_copy(
    tmp_path: Path, toy_env: None, monkeypatch: pytest.MonkeyPatch, damage: Any
) -> None:
    site = build_site(tmp_path / "site", items=3000)
    playbook = tmp_path / "toy.yaml"
    playbook.write_text(TOY_PLAYBOOK.replace(", report: reports/items.txt", ""))
    damage(site)
    copied = _copies(monkeypatch)
    before = snapshot(site)
    plan = _plan_json(playbook, tmp_path)
    assert copied == ["catalog.sqlite"]
    assert snapshot(site) == before  # no -wal/-shm made, the hot journal left as it was
    # the copy reads like the original: the interrupted update is rolled back
    assert plan["steps"][1]["changes"] == {"items": {"state A -> X": 2995, "deleted": 5}}
    assert invoke("run", playbook, "--yes").exit_code == 0
    assert steps_of(site)["mark"]["changes"] == plan["steps"][1]["changes"]


def test_a_catalog_replaced_by_a_step_is_followed_without_copies(
    tmp_path: Path, toy_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = build_site(tmp_path / "site", items=40)
    shutil.copyfile(site / "catalog.sqlite", site / "saved.sqlite")
    playbook = tmp_path / "replace.yaml"
    playbook.write_text(REPLACING_PLAYBOOK)
    copied = _copies(monkeypatch)
    before = snapshot(site)
    plan = _plan_json(playbook, tmp_path)
    assert copied == []
    assert snapshot(site) == before
    predicted = _predicted(plan)
    # the second mark sees the put-back catalog, where every item is A again
    assert predicted["mark_again"] == predicted["mark"]
    assert predicted["mark"][1] == {"items": {"state A -> X": 35, "deleted": 5}}
    assert invoke("run", playbook, "--yes").exit_code == 0
    done = steps_of(site)
    assert {k: ("done", v["changes"], v["loss"]) for k, v in done.items()} == predicted
    assert {r[1] for r in catalog_rows(site / "catalog.sqlite")["items"]} == {"X"}


def test_a_restart_on_copies_gives_the_same_plan_and_shows_each_step_once(
    toy_playbook: Path, toy_site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = invoke("plan", toy_playbook)
    calls = 0
    real = rehearsal_module.Rehearsal.connection

    def restart_at_the_third(self: Any, *args: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise rehearsal_module.RestartOnCopies("test")
        return real(self, *args)

    monkeypatch.setattr(rehearsal_module.Rehearsal, "connection", restart_at_the_third)
    copied = _copies(monkeypatch)
    before = snapshot(toy_site)
    again = invoke("plan", toy_playbook)
    assert calls == 3
    assert copied == ["catalog.sqlite"]
    assert again.exit_code == expected.exit_code == 0
    assert again.stdout == expected.stdout
    assert snapshot(toy_site) == before


def test_reopening_refuses_to_drop_changes_to_a_catalog_still_in_use(tmp_path: Path) -> None:
    site = build_site(tmp_path / "site", items=10)
    live = site / "catalog.sqlite"
    other = tmp_path / "other.sqlite"
    shutil.copyfile(live, other)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    rehearsal = rehearsal_module.Rehearsal(scratch / "journal.sqlite", scratch)
    conn = rehearsal.connection({"catalog": ("catalog.sqlite", live)}, {})
    rehearsal.attach("catalog", "catalog.sqlite", live)
    conn.execute("UPDATE catalog.items SET state = 'Q'")
    # another file under the same alias, the changed one still where its name points
    with pytest.raises(rehearsal_module.RestartOnCopies):
        rehearsal.connection({"catalog": ("other.sqlite", other)}, {"catalog.sqlite": live})
    # ...but once its name points elsewhere (a step replaced it) the change is moot
    rehearsal.connection({"catalog": ("other.sqlite", other)}, {"catalog.sqlite": other})
    rehearsal.close()
    assert {r[1] for r in catalog_rows(live)["items"]} == {"A"}
    assert not (site / "catalog.sqlite-journal").exists()


def test_a_transaction_sqlite_rolled_back_is_never_followed_by_a_commit(tmp_path: Path) -> None:
    """SQLite rolls the whole transaction back on some errors (out of memory, I/O):
    the next savepoint would then begin a transaction of its own whose release
    commits. The rehearsal refuses to go on instead, and refuses every write."""
    site = build_site(tmp_path / "site", items=10)
    live = site / "catalog.sqlite"
    before = live.read_bytes()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    rehearsal = rehearsal_module.Rehearsal(scratch / "journal.sqlite", scratch)
    conn = rehearsal.connection({"catalog": ("catalog.sqlite", live)}, {})
    rehearsal.attach("catalog", "catalog.sqlite", live)
    rehearsal.begin_step()
    conn.execute("UPDATE catalog.items SET state = 'Q'")
    conn.execute("ROLLBACK")  # what SQLite does itself after SQLITE_NOMEM or SQLITE_IOERR
    with pytest.raises(sqlite3.DatabaseError, match="not authorized"):
        conn.execute("DELETE FROM catalog.items")
    for step in (rehearsal.commit_step, rehearsal.checkpoint, rehearsal.begin_step):
        with pytest.raises(sqlite3.OperationalError, match="rolled back the plan's transaction"):
            step()
    rehearsal.close()
    assert live.read_bytes() == before
