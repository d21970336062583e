"""The replay engine in-process, through a fake step context (fast, many cases)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from runner.errors import RecoverError
from runner.procedures.roll_forward import media as m
from runner.procedures.roll_forward import replay as replay_module
from runner.procedures.roll_forward.actions.flags import SetFlags
from runner.procedures.roll_forward.actions.recover import Recover
from runner.procedures.roll_forward.actions.restore import Restore
from tests.procedures.roll_forward.conftest import (
    DEFAULT_DBS,
    assert_matches,
    outcome_counts,
    scenario,
    snapshot,
)
from tests.procedures.roll_forward.fake import Killed, run_action

DBS = list(DEFAULT_DBS)


def _prepare(site: Path) -> None:
    run_action(SetFlags({"databases": DBS, "access": "disabled", "recovery": "enabled"}), site)
    run_action(Restore({"databases": DBS}), site)


def _rows(site: Path) -> dict[str, list[tuple[object, ...]]]:
    out = {}
    for db in DBS:
        conn = sqlite3.connect(site / "databases" / f"{db}.sqlite")
        out[db] = conn.execute("SELECT * FROM rf_recovery ORDER BY txn").fetchall()
        conn.close()
    return out


@pytest.mark.parametrize("reader", ["inline", "process"])
def test_every_crash_point_resumes_to_the_same_end(make_site, reader: str) -> None:
    args = {
        "databases": DBS,
        "log_set": "dblog",
        "checkpoint_records": 150,
        "batch_calls": 25,
        "chunk_records": 40,
        "reader": reader,
    }
    clean = make_site(seed=51, transactions=120)
    _prepare(clean)
    items = run_action(Recover(args), clean)._items
    assert items >= 10
    for crash_after in range(1, items):
        site = make_site(seed=51, transactions=120)
        _prepare(site)
        _last_state.clear()
        with pytest.raises(Killed):
            run_action(Recover(args), site, crash_after=crash_after)
        # the engine hands the step its last checkpointed state again
        state = _last_state[0] if _last_state else None
        run_action(Recover(args), site, state=state)
        assert _rows(site) == _rows(clean), f"crash after {crash_after}"
        assert_matches(site)


_last_state: list[dict[str, object]] = []


@pytest.fixture(autouse=True)
def _capture_checkpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remember the last checkpointed state, as the engine's journal would."""
    from tests.procedures.roll_forward import fake

    _last_state.clear()
    original = fake.FakeContext.checkpoint

    def checkpoint(self, state):  # type: ignore[no-untyped-def]
        _last_state[:] = [dict(state)]
        original(self, state)

    monkeypatch.setattr(fake.FakeContext, "checkpoint", checkpoint)


def test_big_transactions_are_spilled_and_read_again(make_site, monkeypatch) -> None:
    site = make_site(seed=52)
    _prepare(site)
    monkeypatch.setattr(replay_module.Options, "spill_calls", 2)
    run_action(Recover({"databases": DBS, "log_set": "dblog"}), site)
    assert_matches(site)
    expected = scenario(site)["expected"]["per_db"]
    for db in DBS:
        got = outcome_counts(site, db)
        # spilled transactions are not kept in memory, so a dependency on an open one
        # is reported as a plain failure: the total suppressed is still exact
        assert got["applied"] == expected[db]["applied"]
        assert (
            got["failed"] + got["dependent"] == expected[db]["failed"] + expected[db]["dependent"]
        )


@pytest.mark.parametrize("reader", ["inline", "process"])
def test_dry_run_changes_nothing_and_predicts(make_site, reader: str) -> None:
    site = make_site(seed=53)
    _prepare(site)
    before = snapshot(site)
    args = {"databases": DBS, "log_set": "dblog", "reader": reader}
    plan = run_action(Recover(args), site, dry_run=True)
    assert snapshot(site) == before
    real = run_action(Recover(args), site)
    assert plan.outputs == real.outputs
    assert plan.changes == real.changes


@pytest.mark.parametrize("reader", ["inline", "process"])
def test_call_for_unknown_transaction_aborts_with_message(
    tmp_path: Path, make_site, reader: str
) -> None:
    site = make_site(seed=54)
    _prepare(site)
    path = site / "logs" / "dblog.4.log"
    data = path.read_bytes()
    header = m.read_header(path.open("rb"), "x")
    # append a well-formed call for a transaction that never began, after the last record
    chunks = list(m.iter_chunks(path.open("rb"), 4, header.size, header.first_seq))
    end = chunks[-1].end_offset
    next_seq = header.first_seq + sum(len(c.records) for c in chunks)
    bogus = m.encode_record(next_seq, m.PUT, m.call_payload(424242, "orders", [], 1, []))
    path.write_bytes(data[:end] + bogus)
    before = snapshot(site, "databases")
    with pytest.raises(RecoverError, match="no begin record"):
        run_action(Recover({"databases": DBS, "log_set": "dblog", "reader": reader}), site)
    assert snapshot(site, "databases") == before
    assert (site / "reports/rollforward/abort.txt").exists()
