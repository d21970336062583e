"""The journal: schema, step records, newest run, read-only peeks, corruption; and
the catalogs it commits with (rollback-journal mode, so multi-file commits are atomic)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from runner.engine import journal
from runner.engine.fingerprint import describe_differences, fingerprint
from runner.engine.journal import RunState, StepRecord
from runner.errors import SiteError
from tests.helpers import TOY_PLAYBOOK, assert_clean, invoke, pos, snapshot, steps_of

WritePlaybook = Callable[..., Path]


def _run_row(conn: sqlite3.Connection, run_id: str, key: str, started: str) -> None:
    conn.execute(
        "INSERT INTO recover_runs (run_id, run_key, playbook, playbook_name, playbook_sha, "
        "params_json, state, clock, started_at) VALUES (?,?,?,?,?,?,?,?,?)",
        (run_id, key, "pb.yaml", "pb", "sha", "{}", "running", started, started),
    )


def test_step_records_round_trip_and_upsert(tmp_path: Path) -> None:
    conn = journal.connect(tmp_path / "journal.sqlite")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    _run_row(conn, "r1", "k", "2026-01-01T00:00:00+00:00")
    record = StepRecord(
        "mark",
        1,
        "toy.mark",
        state="done",
        attempts=2,
        changes={"items": {"state A -> X": 95}},
        loss={"items": 5},
        loss_examples=["item 1"],
        outputs={"marked": 100, "nested": [1, {"a": None}]},
        notes=[{"level": "warning", "text": "careful"}],
        media=["write reports/x.txt (3 bytes)"],
        reports=["reports/x.txt"],
        state_data={"done": 100},
        error=None,
        started_at="2026-01-01T00:00:00+00:00",
        finished_at="2026-01-01T00:00:01+00:00",
        seconds=1.5,
    )
    journal.write_step(conn, "r1", record)
    assert journal.read_steps(conn, "r1") == {"mark": record}
    record.state, record.error = "failed", "boom"
    journal.write_step(conn, "r1", record)
    assert journal.read_steps(conn, "r1") == {"mark": record}
    assert conn.execute("SELECT count(*) FROM recover_steps").fetchone()[0] == 1
    conn.close()


def test_latest_run_is_the_newest_of_its_key(tmp_path: Path) -> None:
    conn = journal.connect(tmp_path / "journal.sqlite")
    assert journal.latest_run(conn, "k") is None
    _run_row(conn, "old", "k", "2026-01-01T00:00:00+00:00")
    _run_row(conn, "new", "k", "2026-01-02T00:00:00+00:00")
    _run_row(conn, "other", "k2", "2026-01-03T00:00:00+00:00")
    journal.set_run_state(conn, "new", RunState.DONE, "2026-01-02T00:00:09+00:00")
    latest = journal.latest_run(conn, "k")
    assert latest is not None
    assert (latest.run_id, latest.state, latest.clock) == (
        "new",
        "done",
        "2026-01-02T00:00:00+00:00",
    )
    conn.close()
    path = tmp_path / "journal.sqlite"
    peeked, steps = journal.peek(path, "k2")
    assert peeked is not None and peeked.run_id == "other" and steps == {}


def test_peek_never_creates_or_changes_anything(tmp_path: Path) -> None:
    assert journal.peek(tmp_path / "none" / "journal.sqlite", "k") == (None, {})
    assert not (tmp_path / "none").exists()
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"not a database")
    assert journal.peek(bad, "k") == (None, {})
    assert bad.read_bytes() == b"not a database"


def test_a_corrupt_journal_is_a_site_error_with_a_fix(tmp_path: Path) -> None:
    bad = tmp_path / ".recover" / "journal.sqlite"
    bad.parent.mkdir()
    bad.write_bytes(b"garbage" * 100)
    with pytest.raises(SiteError, match="unreadable") as info:
        journal.connect(bad)
    assert info.value.fix and ".recover" in info.value.fix


def test_a_wal_catalog_is_switched_to_rollback_journal_mode(
    toy_playbook: Path, toy_site: Path
) -> None:
    with sqlite3.connect(toy_site / "catalog.sqlite") as conn:
        assert conn.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
    conn.close()
    assert invoke("run", toy_playbook, "--yes").exit_code == 0
    conn = sqlite3.connect(toy_site / "catalog.sqlite")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    finally:
        conn.close()
    assert not (toy_site / "catalog.sqlite-wal").exists()


def test_plan_does_not_switch_a_wal_catalog(toy_playbook: Path, toy_site: Path) -> None:
    with sqlite3.connect(toy_site / "catalog.sqlite") as conn:
        conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    before = snapshot(toy_site)
    assert invoke("plan", toy_playbook).exit_code == 0
    assert snapshot(toy_site) == before


def test_a_run_time_expression_failure_points_at_the_playbook_line(
    toy_site: Path, write_playbook: WritePlaybook
) -> None:
    text = TOY_PLAYBOOK.replace(
        "    action: toy.copy\n",
        # an int compared with text: only the run can tell (an unknown output name
        # is caught by validate already)
        "    action: toy.copy\n    when: \"{{ steps.mark.outputs.marked > 'x' }}\"\n",
    )
    path = write_playbook(text)
    result = invoke("run", path, "--yes")
    assert result.exit_code == 1
    assert_clean(result)
    line, col = pos(text, '"{{ steps.mark.outputs.marked')
    assert f"{path}:{line}:{col}: expression fails: " in result.stderr
    assert "[$.steps[2].when]" in result.stderr
    assert steps_of(toy_site)["mark"]["state"] == "done"


def test_fingerprint_covers_every_site_file_but_the_runners_own(tmp_path: Path) -> None:
    (tmp_path / ".recover").mkdir()
    (tmp_path / ".recover" / "journal.sqlite").write_bytes(b"x")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f.bin").write_bytes(b"one")
    (tmp_path / "g.txt").write_bytes(b"two")
    prints = fingerprint(tmp_path)
    assert set(prints) == {"a/f.bin", "g.txt"}
    assert all(v.startswith("sha256=") for v in prints.values())
    (tmp_path / "g.txt").write_bytes(b"TWO")
    (tmp_path / "a" / "f.bin").unlink()
    (tmp_path / "h").write_bytes(b"")
    assert describe_differences(prints, fingerprint(tmp_path)) == [
        "removed: a/f.bin",
        "changed: g.txt",
        "added: h",
    ]
    many = {f"f{i:02}": "x" for i in range(15)}
    lines = describe_differences({}, many, limit=10)
    assert len(lines) == 11 and lines[-1] == "... and 5 more"


def test_a_journal_from_an_earlier_release_is_upgraded_and_read(tmp_path: Path) -> None:
    """Before media_log_json: read only, it reads as an empty log; opened for a run,
    the column is added and the rows keep everything else."""
    import sqlite3

    from runner.engine import journal

    path = tmp_path / "journal.sqlite"
    old_schema = "\n".join(
        line for line in journal.SCHEMA.splitlines() if "media_log_json" not in line
    )
    with sqlite3.connect(path) as conn:
        conn.executescript(old_schema)
        conn.execute(
            "INSERT INTO recover_steps (run_id, step_id, position, action, state, changes_json)"
            " VALUES ('r', 's', 0, 'toy.mark', 'done', '{\"items\": {\"X\": 3}}')"
        )
    conn.close()
    readonly = journal.connect_readonly(path)
    try:
        step = journal.read_steps(readonly, "r")["s"]
    finally:
        readonly.close()
    assert step.media_log == {} and step.changes == {"items": {"X": 3}}
    upgraded = journal.connect(path)
    try:
        step = journal.read_steps(upgraded, "r")["s"]
        columns = [row[1] for row in upgraded.execute("PRAGMA table_info(recover_steps)")]
    finally:
        upgraded.close()
    assert "media_log_json" in columns
    assert step.media_log == {} and step.changes == {"items": {"X": 3}}
