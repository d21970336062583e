"""States as enums through the journal, and the run row's own functions (RunRecord)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.engine import journal
from runner.engine.journal import RunRecord, RunState, StepRecord, StepState


def _run(run_id: str, key: str = "k", started: str = "2026-01-01T00:00:00+00:00") -> RunRecord:
    return RunRecord(
        run_id=run_id,
        run_key=key,
        playbook="pb.yaml",
        playbook_name="pb",
        playbook_sha="sha",
        params_json=journal.dump({"volume": "VOL1", "n": 3}),
        state=RunState.RUNNING,
        clock=started,
        started_at=started,
        host="h",
        pid=7,
        user="u",
    )


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[journal.TrackedConnection]:
    connection = journal.connect(tmp_path / "journal.sqlite")
    yield connection
    connection.close()


@pytest.mark.parametrize("state", list(StepState))
def test_every_step_state_is_stored_as_its_text_and_read_back_as_the_enum(
    conn: sqlite3.Connection, state: StepState
) -> None:
    journal.insert_run(conn, _run("r1"))
    journal.write_step(conn, "r1", StepRecord("s", 0, "toy.mark", state=state))
    stored = conn.execute("SELECT state, typeof(state) FROM recover_steps").fetchone()
    assert stored == (state.value, "text")
    read = journal.read_steps(conn, "r1")["s"].state
    assert read is state and type(read) is StepState


@pytest.mark.parametrize("state", list(RunState))
def test_every_run_state_is_stored_as_its_text_and_read_back_as_the_enum(
    conn: sqlite3.Connection, state: RunState
) -> None:
    journal.insert_run(conn, _run("r1"))
    journal.set_run_state(conn, "r1", state, "2026-01-01T00:00:09+00:00", "why")
    assert conn.execute("SELECT state, typeof(state) FROM recover_runs").fetchone() == (
        state.value,
        "text",
    )
    latest = journal.latest_run(conn, "k")
    assert latest is not None and latest.state is state
    assert (latest.finished_at, latest.error) == ("2026-01-01T00:00:09+00:00", "why")


def test_states_show_as_their_text() -> None:
    assert json.dumps({"s": StepState.DONE, "r": RunState.INTERRUPTED}) == (
        '{"s": "done", "r": "interrupted"}'
    )
    assert f"{StepState.REFUSED:<9}|" == "refused  |"
    assert StepState("skipped") is StepState.SKIPPED and StepState.SKIPPED == "skipped"
    assert StepRecord("s", 0, "a", state="failed").state is StepState.FAILED  # type: ignore[arg-type]


def test_only_done_and_skipped_steps_are_finished() -> None:
    assert {s for s in StepState if s.finished} == {StepState.DONE, StepState.SKIPPED}


def test_a_run_record_is_the_row_column_for_column(conn: sqlite3.Connection) -> None:
    run = _run("r1")
    journal.insert_run(conn, run)
    columns = [row[1] for row in conn.execute("PRAGMA table_info(recover_runs)")]
    assert list(run.as_row()) == columns
    conn.row_factory = sqlite3.Row
    stored = dict(conn.execute("SELECT * FROM recover_runs").fetchone())
    conn.row_factory = None
    assert stored == run.as_row()
    assert stored["params_json"] == '{"n": 3, "volume": "VOL1"}'
    assert journal.latest_run(conn, "k") == run


def test_latest_run_and_recent_runs_order_newest_first(conn: sqlite3.Connection) -> None:
    journal.insert_run(conn, _run("old", "k", "2026-01-01T00:00:00+00:00"))
    journal.insert_run(conn, _run("new", "k", "2026-01-02T00:00:00+00:00"))
    journal.insert_run(conn, _run("other", "k2", "2026-01-03T00:00:00+00:00"))
    journal.insert_run(conn, _run("same-second", "k2", "2026-01-03T00:00:00+00:00"))
    assert journal.latest_run(conn, "nope") is None
    latest = journal.latest_run(conn, "k")
    assert latest is not None and latest.run_id == "new"
    assert [r.run_id for r in journal.recent_runs(conn, 3)] == ["same-second", "other", "new"]
    assert journal.recent_runs(conn, 0) == []


def test_claim_run_marks_it_running_by_this_process(conn: sqlite3.Connection) -> None:
    journal.insert_run(conn, _run("r1"))
    journal.set_run_state(conn, "r1", RunState.INTERRUPTED, None, "interrupted")
    journal.claim_run(conn, "r1", 4242)
    latest = journal.latest_run(conn, "k")
    assert latest is not None
    assert (latest.state, latest.pid) == (RunState.RUNNING, 4242)
    assert latest.error == "interrupted"  # until the run finishes again


def test_peek_reads_the_run_record_and_its_steps(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    conn = journal.connect(path)
    journal.insert_run(conn, _run("r1"))
    journal.write_step(conn, "r1", StepRecord("s", 0, "toy.mark", state=StepState.DONE))
    conn.close()
    run, steps = journal.peek(path, "k")
    assert run == _run("r1")
    assert list(steps) == ["s"] and steps["s"].state is StepState.DONE
