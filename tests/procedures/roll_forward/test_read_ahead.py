"""The log read ahead in a second process ends exactly like the log read in-process."""

from __future__ import annotations

import json
import marshal
import os
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.engine.media import MediaStore
from runner.errors import RecoverError
from runner.procedures.roll_forward import media as m
from runner.procedures.roll_forward import reader as reader_module
from runner.procedures.roll_forward import replay as replay_module
from runner.procedures.roll_forward.actions.flags import SetFlags
from runner.procedures.roll_forward.actions.recover import Recover
from runner.procedures.roll_forward.actions.restore import Restore
from runner.procedures.roll_forward.batches import CallPlanner, Txn, time_text
from runner.procedures.roll_forward.catalog import StatementCache
from runner.procedures.roll_forward.logset import scan_log_set
from runner.procedures.roll_forward.reader import LogReader, Options, ReplayState, read_ahead
from runner.site import Site
from tests.procedures.roll_forward.conftest import (
    DEFAULT_DBS,
    assert_matches,
    scenario,
    snapshot,
)
from tests.procedures.roll_forward.fake import run_action

DBS = list(DEFAULT_DBS)
SMALL = {"checkpoint_records": 300, "batch_calls": 30, "chunk_records": 50}


def _prepare(site: Path) -> None:
    run_action(SetFlags({"databases": DBS, "access": "disabled", "recovery": "enabled"}), site)
    run_action(Restore({"databases": DBS}), site)


def _outcome(site: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"reports": snapshot(site, "reports")}
    for db in DBS:
        conn = sqlite3.connect(site / "databases" / f"{db}.sqlite")
        out[db] = conn.execute("SELECT * FROM rf_recovery ORDER BY txn").fetchall()
        out[db + ".flags"] = conn.execute("SELECT * FROM rf_flags").fetchall()
        conn.close()
    return out


def _both(make_site, seed: int, args: dict[str, Any], **world: Any) -> list[dict[str, Any]]:
    """Run the same roll forward read inline and read ahead; their outcomes."""
    outcomes = []
    for reader in ("inline", "process"):
        site = make_site(seed=seed, **world)
        _prepare(site)
        given = {"databases": DBS, "log_set": "dblog", **args, "reader": reader}
        if given.get("stop_at") == "stop_case":
            given["stop_at"] = scenario(site)["stop_case"]["stop_at"]
        ctx = run_action(Recover(given), site)
        outcome = _outcome(site)
        outcome["outputs"] = ctx.outputs
        outcome["changes"] = ctx.changes
        outcome["warnings"] = ctx.warnings
        outcomes.append(outcome)
    return outcomes


@pytest.mark.parametrize(
    ("seed", "args", "world"),
    [
        (61, SMALL, {}),  # failures, dependent failures, a damaged tail, rollbacks
        (62, {**SMALL, "batch_calls": 5}, {"transactions": 300}),
        (63, {**SMALL, "stop_at": "stop_case"}, {}),
        (64, {}, {"transactions": 300}),  # default sizes: one batch, one checkpoint
    ],
)
def test_read_ahead_ends_exactly_like_inline(make_site, seed, args, world) -> None:
    inline, ahead = _both(make_site, seed, args, **world)
    assert ahead == inline
    assert any(inline[db] for db in DBS)


def test_spilled_transactions_read_ahead(make_site, monkeypatch) -> None:
    monkeypatch.setattr(replay_module.Options, "spill_calls", 2)
    inline, ahead = _both(make_site, 65, SMALL)
    assert ahead == inline


def test_failing_batch_is_read_again_and_only_the_culprit_is_lost(make_site) -> None:
    """Big batches with failures inside: the batch is re-read, split, and replayed."""
    site = make_site(seed=66, transactions=300)
    _prepare(site)
    run_action(
        Recover({"databases": DBS, "log_set": "dblog", "batch_calls": 500, "reader": "process"}),
        site,
    )
    assert_matches(site)


def test_auto_reads_ahead_only_when_the_log_is_worth_it(make_site, monkeypatch) -> None:
    started = []
    real = replay_module.read_ahead

    def spy(reader: LogReader):  # type: ignore[no-untyped-def]
        started.append(reader.bytes_to_read())
        return real(reader)

    monkeypatch.setattr(replay_module, "read_ahead", spy)
    monkeypatch.setattr(replay_module, "_cores", lambda: 2)
    site = make_site(seed=67)
    _prepare(site)
    run_action(Recover({"databases": DBS, "log_set": "dblog"}), site)
    assert started == []  # a small log: read in-process
    monkeypatch.setattr(replay_module, "READ_AHEAD_BYTES", 1)
    site = make_site(seed=67)
    _prepare(site)
    run_action(Recover({"databases": DBS, "log_set": "dblog"}), site)
    assert len(started) == 1 and started[0] > 0
    assert_matches(site)
    monkeypatch.setattr(replay_module, "_cores", lambda: 1)
    site = make_site(seed=67)
    _prepare(site)
    run_action(Recover({"databases": DBS, "log_set": "dblog"}), site)
    assert len(started) == 1  # one core: nothing to gain


def _reader(site: Path) -> LogReader:
    media = MediaStore(Site(site), dry_run=False)
    logset = scan_log_set(media, "dblog")
    db = sqlite3.connect(":memory:")
    targets = {}
    for name in DBS:
        db.execute(f"ATTACH ? AS db_{name}", (str(site / "databases" / f"{name}.sqlite"),))
        targets[name] = f"db_{name}"
    paths = {n: str(media.path(logset.rel(n))) for n in logset.headers}
    state = ReplayState(targets=targets, pos=[1, 0, 1])
    return LogReader(
        logset, paths, state, Options(flush_calls=10), StatementCache(db, targets.values())
    )


def _no_children_left() -> bool:
    """No reader process left behind, running or unreaped."""
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def test_the_same_messages_cross_the_pipe(make_site) -> None:
    site = make_site(seed=68)
    _prepare(site)
    inline = list(_reader(site).messages())
    ahead = list(read_ahead(_reader(site)))
    assert ahead == inline
    assert [m[0] for m in inline].count("batch") > 3
    assert inline[-1][0] == "end"
    assert _no_children_left()


def test_closing_early_stops_the_reader_process(make_site) -> None:
    site = make_site(seed=69)
    _prepare(site)
    messages = read_ahead(_reader(site))
    assert next(messages)[0] in ("progress", "batch")
    messages.close()
    assert _no_children_left()


def test_a_reader_process_that_fails_is_an_error_not_a_hang(make_site, monkeypatch) -> None:
    def broken(self: LogReader):  # type: ignore[no-untyped-def]
        yield ("progress", 1, 1, 0)
        raise ValueError("boom in the reader")

    monkeypatch.setattr(reader_module.LogReader, "_messages", broken)
    site = make_site(seed=70)
    _prepare(site)
    before = snapshot(site, "databases")
    with pytest.raises(RuntimeError, match=r"log reader process failed(.|\n)*boom in the reader"):
        run_action(Recover({"databases": DBS, "log_set": "dblog", "reader": "process"}), site)
    assert snapshot(site, "databases") == before
    assert _no_children_left()


def test_a_reader_process_killed_is_an_error(make_site, monkeypatch) -> None:
    def killed(self: LogReader):  # type: ignore[no-untyped-def]
        yield ("progress", 1, 1, 0)
        time.sleep(0.05)
        os.kill(os.getpid(), 9)
        yield ("progress", 1, 1, 0)

    monkeypatch.setattr(reader_module.LogReader, "_messages", killed)
    site = make_site(seed=71)
    _prepare(site)
    with pytest.raises(RecoverError, match="log reader process ended unexpectedly"):
        run_action(Recover({"databases": DBS, "log_set": "dblog", "reader": "process"}), site)
    assert _no_children_left()


@pytest.mark.parametrize(
    ("ddl", "calls"),
    [
        # one row, keys unequal in Python
        ("id INTEGER PRIMARY KEY, v, w", [("1.0", "v", 5), ("1", "v", 7)]),
        ("id TEXT PRIMARY KEY COLLATE NOCASE, v, w", [("abc", "v", 5), ("ABC", "v", 7)]),
        ("id INTEGER PRIMARY KEY, v, w", [(1, "v", 5), (True, "v", 6), (1.0, "v", 7)]),
        ("id REAL PRIMARY KEY, v, w", [(2**53 + 1, "v", 5), (2**53, "v", 7)]),  # one REAL row
        ("id INTEGER PRIMARY KEY, v, w", [(9, "v", 1), (3, "v", 2), (9, "w", 3), (3, "v", 5)]),
        # under NOCASE the last call is on the row of the first three: it must come last
        (
            "id TEXT PRIMARY KEY COLLATE NOCASE, v, w",
            [("ABC", "v", 5), ("ABC", "w", 1), ("ABC", "v", 6), ("abc", "v", 7)],
        ),
    ],
)
def test_planned_calls_end_as_in_log_order(ddl: str, calls: list[tuple[Any, str, int]]) -> None:
    """Waves and key order never change what a row ends with."""
    ends = []
    for planned in (True, False):
        db = sqlite3.connect(":memory:")
        db.execute("ATTACH ':memory:' AS db_x")
        db.execute(f"CREATE TABLE db_x.t ({ddl})")
        for key, _column, _value in calls:
            db.execute("INSERT OR IGNORE INTO db_x.t (id, v, w) VALUES (?, 0, 0)", (key,))
        stmts = StatementCache(db, ["db_x"])
        if planned:
            txns = []
            for number, (key, column, value) in enumerate(calls):
                t = Txn(number, 0, "db_x", 0, number * 10, 1, 0)
                assert t.keys is not None
                t.keys.append(("db_x", m.UPDATE, f"t({column})".encode()))
                t.jsons.append(json.dumps([key, value]).encode())
                txns.append(t)
            for full, rows in CallPlanner(stmts).plan(txns):
                db.executemany(stmts.get(*full).sql or "", rows)
        else:
            for key, column, value in calls:
                db.execute(f'UPDATE db_x."t" SET "{column}" = ?2 WHERE "id" = ?1', (key, value))
        ends.append(db.execute("SELECT * FROM db_x.t ORDER BY id").fetchall())
    assert ends[0] == ends[1]


def test_long_open_transactions_cross_as_positions(make_site, monkeypatch) -> None:
    """An open transaction sent as where it begins is read again when a failure
    might depend on it: the same outcome, dependent failures included."""
    inline, ahead = _both(make_site, 61, SMALL)
    monkeypatch.setattr(reader_module, "OPEN_CALLS_SENT", 0)
    inline_far, ahead_far = _both(make_site, 61, SMALL)
    assert inline_far == ahead_far == inline == ahead


def test_an_old_rf_recovery_table_is_given_the_time_columns(make_site) -> None:
    """A backup copy taken after an earlier roll forward brings that release's table."""
    site = make_site(seed=72)
    backup = sqlite3.connect(site / "backups" / "sales.sqlite")
    backup.execute(OLD_RECOVERY_DDL)
    backup.execute(
        "INSERT INTO rf_recovery VALUES (6999, 1, 'u', 'p', 'applied', NULL, NULL, "
        "1767225600123456, 1767225601000000, 1, 2, 1)"
    )
    backup.commit()
    backup.close()
    _prepare(site)
    run_action(Recover({"databases": DBS, "log_set": "dblog"}), site)
    assert_matches(site)
    conn = sqlite3.connect(site / "databases" / "sales.sqlite")
    old = conn.execute("SELECT begin_time, end_time FROM rf_recovery WHERE logging_id = 6999")
    assert old.fetchall() == [("2026-01-01T00:00:00.123Z", "2026-01-01T00:00:01.000Z")]
    assert conn.execute("SELECT count(*) FROM rf_recovery WHERE begin_time IS NULL").fetchone() == (
        0,
    )
    conn.close()


OLD_RECOVERY_DDL = """CREATE TABLE rf_recovery (
    logging_id INTEGER NOT NULL, txn INTEGER NOT NULL, user TEXT NOT NULL,
    program TEXT NOT NULL, status TEXT NOT NULL, reason TEXT, detail TEXT,
    begin_us INTEGER NOT NULL, end_us INTEGER, first_record INTEGER NOT NULL,
    end_record INTEGER, calls INTEGER NOT NULL, PRIMARY KEY (logging_id, txn)
) WITHOUT ROWID"""


def test_an_unreadable_table_does_not_stop_the_replay() -> None:
    db = sqlite3.connect(":memory:")
    db.execute("ATTACH ':memory:' AS db_x")
    db.execute("CREATE TABLE db_x.t (id INTEGER PRIMARY KEY, v)")
    db.execute("CREATE TABLE db_x.gone (id INTEGER PRIMARY KEY)")
    db.execute("CREATE VIEW db_x.broken AS SELECT * FROM gone")
    db.execute("DROP TABLE db_x.gone")
    stmts = StatementCache(db, ["db_x"])
    assert stmts.get("db_x", m.UPDATE, b"t(v)").sql
    problem = stmts.get("db_x", m.UPDATE, b"broken(v)").problem
    assert problem is not None and "broken cannot be read" in problem


def test_a_reader_process_killed_mid_message_is_an_error(make_site, monkeypatch) -> None:
    def half_then_die(pipe, message):  # type: ignore[no-untyped-def]
        data = marshal.dumps(message)
        pipe.write(reader_module.FRAME.pack(len(data)) + data[: len(data) // 2])
        pipe.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    monkeypatch.setattr(reader_module, "_send", half_then_die)
    site = make_site(seed=73)
    _prepare(site)
    with pytest.raises(RecoverError, match="log reader process ended unexpectedly"):
        list(read_ahead(_reader(site)))
    assert _no_children_left()


@given(st.integers(min_value=-62_135_596_800_000_000, max_value=253_402_300_799_000_000))
def test_time_text_is_what_sqlite_strftime_shows(us: int) -> None:
    """The text the per-user files showed when SQLite made it, rounding included."""
    sqlite = sqlite3.connect(":memory:").execute(
        "SELECT strftime('%Y-%m-%dT%H:%M:%fZ', ? / 1000000.0, 'unixepoch')", (us,)
    )
    assert time_text(us) == sqlite.fetchone()[0]


@given(st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1))
def test_time_text_never_fails_on_hostile_times(us: int) -> None:
    assert time_text(us)
