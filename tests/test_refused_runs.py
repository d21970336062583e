"""Refused runs change nothing (issue 15, item 4): a run whose later step would
fail on its inputs is refused before its first step, names that step, leaves
the site byte-identical without creating `.recover/`, and its fix, followed,
lets the same command succeed. `plan` reports the same problem."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from runner.contract import catalog_shape_checks
from tests.helpers import PLAYBOOKS_DIR, assert_clean, fix_line, invoke, snapshot

NOW = "2026-01-06T09:00:00+00:00"


@pytest.fixture(autouse=True)
def _pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECOVER_NOW", NOW)
    monkeypatch.delenv("RECOVER_EXTRA_PROCEDURES", raising=False)
    monkeypatch.delenv("RECOVER_CRASH_AT", raising=False)


def _world(tmp_path: Path, *args: str) -> Path:
    site = tmp_path / "site"
    result = invoke("world", args[0], site, *args[1:])
    assert result.exit_code == 0, result.output
    return site


def _refused(playbook: Path, site: Path, *extra: str) -> str:
    """Run and plan both refuse (exit 1) and change nothing; the run's output."""
    before = snapshot(site)
    run = invoke("run", playbook, "--site", site, "--yes", *extra)
    assert run.exit_code == 1, run.output
    assert_clean(run)
    assert "nothing was changed" in run.stderr
    assert snapshot(site) == before
    assert not (site / ".recover").exists()
    plan = invoke("plan", playbook, "--site", site, *extra)
    assert plan.exit_code == 1, plan.output
    assert_clean(plan)
    assert snapshot(site) == before
    return run.output + "\n--- plan ---\n" + plan.output


def test_a_truncated_backup_refuses_the_roll_forward_before_the_flags_change(
    tmp_path: Path,
) -> None:
    site = _world(tmp_path, "rollforward", "--transactions", "60", "--rows", "10")
    pristine = tmp_path / "sales.sqlite"
    shutil.copyfile(site / "backups" / "sales.sqlite", pristine)
    with open(site / "backups" / "sales.sqlite", "r+b") as handle:
        handle.truncate(5000)
    playbook = PLAYBOOKS_DIR / "roll-forward.yaml"
    said = _refused(playbook, site)
    assert (
        "step 'restore' (and 1 later step(s): recover) would fail: catalog "
        "backups/sales.sqlite: backups/sales.sqlite is truncated: its header says" in said
    )
    assert "the file has 5,000" in said
    # plan shows the same problem on the same step
    assert "[!!] restore: rollforward.restore" in said
    assert "FAIL catalog backups/sales.sqlite (backups/sales.sqlite is truncated" in said
    assert fix_line(said.split("--- plan ---")[0]) == (
        "fix: restore backups/sales.sqlite from a backup, or point the playbook's site at "
        "the right file"
    )
    shutil.copyfile(pristine, site / "backups" / "sales.sqlite")  # the fix
    assert invoke("run", playbook, "--site", site, "--yes").exit_code == 0


def test_a_dropped_table_refuses_the_archive_run_before_its_first_step(tmp_path: Path) -> None:
    site = _world(tmp_path, "archive", "--studies", "30")
    conn = sqlite3.connect(site / "catalog.sqlite")
    rows = conn.execute("SELECT * FROM send_jobs").fetchall()
    schema = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'send_jobs'").fetchone()[0]
    conn.execute("DROP TABLE send_jobs")
    conn.commit()
    conn.close()
    playbook = PLAYBOOKS_DIR / "archive-volume-recovery.yaml"
    said = _refused(playbook, site)
    assert (
        "step 'load_damaged' (and 9 later step(s): scan, unload_damaged, mark, pre, "
        "load_copies, attempt, post, unload, clean_up) would fail: the archive catalog has "
        "its tables: missing tables: send_jobs" in said
    )
    assert "fix: point site.catalog at the archive catalog" in said
    conn = sqlite3.connect(site / "catalog.sqlite")
    with conn:
        conn.execute(schema)
        conn.executemany(f"INSERT INTO send_jobs VALUES ({','.join('?' * 7)})", rows)
    conn.close()
    assert invoke("run", playbook, "--site", site, "--yes").exit_code == 0


def test_a_wrong_typed_value_names_the_table_row_and_column(tmp_path: Path) -> None:
    site = _world(tmp_path, "pools", "--elements", "20")
    conn = sqlite3.connect(site / "catalog.sqlite")
    with conn:
        (number,) = conn.execute("SELECT number FROM versions WHERE id = 3").fetchone()
        conn.execute("UPDATE versions SET number = x'00ff' WHERE id = 3")
    conn.close()
    playbook = PLAYBOOKS_DIR / "pool-container-fix.yaml"
    said = _refused(playbook, site)
    assert (
        "the repository catalog table versions holds values of the right types: table "
        "versions, row 3: column number holds blob b'\\x00\\xff', expected integer" in said
    )
    assert "fix: correct row 3 of table versions (column number), or restore the catalog" in said
    conn = sqlite3.connect(site / "catalog.sqlite")
    with conn:
        conn.execute("UPDATE versions SET number = ? WHERE id = 3", (number,))
    conn.close()
    assert invoke("run", playbook, "--site", site, "--yes").exit_code == 0


def test_a_log_file_that_is_a_directory_refuses_before_the_flags_change(tmp_path: Path) -> None:
    site = _world(tmp_path, "rollforward", "--transactions", "60", "--rows", "10")
    log = site / "logs" / "dblog.1.log"
    kept = tmp_path / "dblog.1.log"
    shutil.move(log, kept)
    log.mkdir()
    said = _refused(PLAYBOOKS_DIR / "roll-forward.yaml", site)
    assert "step 'recover' would fail: log set dblog is intact: media file logs/dblog.1.log" in said
    log.rmdir()
    shutil.move(kept, log)
    assert (
        invoke("run", PLAYBOOKS_DIR / "roll-forward.yaml", "--site", site, "--yes").exit_code == 0
    )


def test_shape_checks_find_missing_tables_columns_and_wrong_types(tmp_path: Path) -> None:
    ddl = "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, s TEXT, b BLOB);"
    path = tmp_path / "c.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(ddl)
    conn.execute("INSERT INTO t VALUES (1, 5, 'a', x'00'), (2, 6, 7, 'text in a blob')")
    conn.commit()
    db = sqlite3.connect(":memory:")
    db.execute("ATTACH DATABASE ? AS catalog", (str(path),))

    def failed(schema: str) -> list[str]:
        checks = catalog_shape_checks(db, schema, what="c", fix="mend it")
        return [c.detail for c in checks if not c.ok]

    assert failed(ddl) == []  # 7 in a TEXT column is stored as text; a BLOB takes anything
    assert failed(ddl + "CREATE TABLE u (x INTEGER);") == ["missing tables: u"]
    assert failed(ddl.replace("b BLOB", "b BLOB, extra TEXT")) == ["table t lacks column(s) extra"]
    conn.execute("UPDATE t SET n = 'many' WHERE id = 2")
    conn.commit()
    assert failed(ddl + "-- another schema text: not the scan kept above") == [
        "table t, row 2: column n holds text 'many', expected integer"
    ]
    conn.close()
    db.close()
