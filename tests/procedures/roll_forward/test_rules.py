"""Replay rules on small hand-written logs, where every outcome is known by construction."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from runner.errors import RecoverError, SafetyRefusal
from runner.procedures.roll_forward import media as m
from runner.procedures.roll_forward.actions.recover import Recover
from runner.procedures.roll_forward.catalog import FLAGS_DDL, stamp_text
from tests.procedures.roll_forward.fake import run_action

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
STAMP = T0 - timedelta(minutes=5)


def _site(
    root: Path,
    transactions: list[tuple[int, list[tuple[int, int, list[str], list[object]]], bool]],
    *,
    stamp: datetime = STAMP,
    by_store: bool = True,
) -> Path:
    """One database `shop` (table items: id, name, qty) and a one-file log set `t`."""
    (root / "databases").mkdir(parents=True)
    conn = sqlite3.connect(root / "databases/shop.sqlite")
    conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER)")
    conn.executemany("INSERT INTO items VALUES (?, ?, ?)", [(1, "a", 1), (2, "b", 2)])
    conn.execute(FLAGS_DDL.format(schema=""))
    conn.execute(
        "INSERT INTO rf_flags (id, database, access, recovery, must_recover, logging, "
        "backup_stamp, backup_by_store) VALUES (1, 'shop', 'disabled', 'enabled', 'enabled', "
        "'enabled', ?, ?)",
        (stamp_text(STAMP), int(by_store)),
    )
    conn.commit()
    conn.close()
    writer = m.LogSetWriter(root / "logs", "t", 42, file_bytes=1 << 30)
    writer.write(m.CYCLE_START, m.cycle_payload(42, m.to_us(T0), {"shop": (m.to_us(stamp), True)}))
    writer.write(m.IDENTITY, m.identity_payload(1, "ann", "PROG", 1))
    clock = T0
    for txn, calls, ends in transactions:
        clock += timedelta(seconds=1)
        writer.write(m.BEGIN, m.begin_payload(txn, 1, m.to_us(clock), "shop"))
        for rtype, key, cols, values in calls:
            writer.write(rtype, m.call_payload(txn, "items", cols, key, values))
        if ends:
            writer.write(m.END, m.end_payload(txn, m.to_us(clock)))
    writer.close()
    return root


def _items(root: Path) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(root / "databases/shop.sqlite")
    try:
        return conn.execute("SELECT * FROM items ORDER BY id").fetchall()
    finally:
        conn.close()


def _outcomes(root: Path) -> dict[int, tuple[object, ...]]:
    conn = sqlite3.connect(root / "databases/shop.sqlite")
    try:
        return {
            r[0]: r[1:]
            for r in conn.execute("SELECT txn, status, reason FROM rf_recovery ORDER BY txn")
        }
    finally:
        conn.close()


ARGS = {"databases": ["shop"], "log_set": "t"}


def test_a_failing_call_suppresses_its_whole_transaction(tmp_path: Path) -> None:
    root = _site(
        tmp_path / "s",
        [
            (
                1,
                [
                    (m.PUT, 10, ["name", "qty"], ["x", 5]),  # would succeed
                    (m.UPDATE, 99, ["qty"], [1]),  # no key 99: fails
                    (m.PUT, 11, ["name", "qty"], ["y", 6]),
                ],
                True,
            ),  # never attempted
            (2, [(m.UPDATE, 1, ["qty"], [7])], True),
            (3, [(m.DELETE, 2, [], [])], False),  # no end: incomplete
        ],
    )
    ctx = run_action(Recover(ARGS), root)
    assert _items(root) == [(1, "a", 7), (2, "b", 2)]  # txn 1's first put is undone too
    assert _outcomes(root) == {
        1: ("suppressed", "failed"),
        2: ("applied", None),
        3: ("suppressed", "incomplete"),
    }
    assert ctx.losses == {"transactions": 1}


def test_a_call_depending_on_a_suppressed_change_is_dependent(tmp_path: Path) -> None:
    root = _site(
        tmp_path / "s",
        [
            (
                1,
                [(m.PUT, 10, ["name", "qty"], ["x", 5]), (m.PUT, 1, ["name", "qty"], ["dup", 0])],
                True,
            ),  # key 1 exists: fails
            (2, [(m.UPDATE, 10, ["qty"], [6])], True),  # 10 came from txn 1
            (3, [(m.PUT, 12, ["name", "qty"], ["z", 1])], True),
        ],
    )
    run_action(Recover(ARGS), root)
    assert _outcomes(root) == {
        1: ("suppressed", "failed"),
        2: ("suppressed", "dependent"),
        3: ("applied", None),
    }
    assert _items(root) == [(1, "a", 1), (2, "b", 2), (12, "z", 1)]


def test_calls_to_an_unknown_table_or_column_fail_the_transaction(tmp_path: Path) -> None:
    root = _site(
        tmp_path / "s",
        [
            (1, [(m.UPDATE, 1, ["colour"], ["red"])], True),
            (2, [(m.UPDATE, 2, ["qty"], [9])], True),
        ],
    )
    run_action(Recover(ARGS), root)
    assert _outcomes(root) == {1: ("suppressed", "failed"), 2: ("applied", None)}
    assert _items(root) == [(1, "a", 1), (2, "b", 9)]


def test_stamp_and_store_flag_gates(tmp_path: Path) -> None:
    root = _site(
        tmp_path / "a",
        [(1, [(m.UPDATE, 1, ["qty"], [3])], True)],
        stamp=STAMP + timedelta(seconds=1),
    )
    with pytest.raises(SafetyRefusal, match="do not correspond"):
        run_action(Recover(ARGS), root)
    assert _items(root) == [(1, "a", 1), (2, "b", 2)]
    ctx = run_action(Recover({**ARGS, "no_stamp_check": True}), root)
    assert any("OVERRIDE no_stamp_check" in w for w in ctx.warnings)
    assert _items(root) == [(1, "a", 3), (2, "b", 2)]
    root = _site(tmp_path / "b", [(1, [(m.UPDATE, 1, ["qty"], [3])], True)], by_store=False)
    with pytest.raises(SafetyRefusal, match="store utility"):
        run_action(Recover(ARGS), root)
    run_action(Recover({**ARGS, "no_store_flag_check": True}), root)
    assert _items(root) == [(1, "a", 3), (2, "b", 2)]


def test_stop_time_is_inclusive_and_nothing_after_is_applied(tmp_path: Path) -> None:
    root = _site(tmp_path / "s", [(n, [(m.UPDATE, 1, ["qty"], [n])], True) for n in range(1, 6)])
    stop = (T0 + timedelta(seconds=3)).isoformat()
    ctx = run_action(Recover({**ARGS, "stop_at": stop}), root)
    assert _items(root)[0] == (1, "a", 3)
    assert ctx.outputs["applied"] == 3 and ctx.outputs["ended_by"] == "stop_time"
    assert ctx.outputs["last_time"] == stop


def test_stop_time_before_the_cycle_is_refused(tmp_path: Path) -> None:
    root = _site(tmp_path / "s", [(1, [(m.UPDATE, 1, ["qty"], [3])], True)])
    with pytest.raises(RecoverError, match="before the start of logging cycle"):
        run_action(Recover({**ARGS, "stop_at": (T0 - timedelta(hours=1)).isoformat()}), root)
    assert _items(root) == [(1, "a", 1), (2, "b", 2)]


def test_a_key_too_big_for_sqlite_fails_its_transaction_only(tmp_path: Path) -> None:
    root = _site(
        tmp_path / "s",
        [
            (1, [(m.PUT, 3, ["name", "qty"], ["c", 3])], True),
            (2, [(m.PUT, 2**70, ["name", "qty"], ["big", 1])], True),
            (3, [(m.PUT, 4, ["name", "qty"], ["d", 4])], True),
        ],
    )
    ctx = run_action(Recover(ARGS), root)
    assert _items(root) == [(1, "a", 1), (2, "b", 2), (3, "c", 3), (4, "d", 4)]
    assert ctx.outputs["applied"] == 2
    assert ctx.outputs["suppressed_by_reason"]["failed"] == 1
