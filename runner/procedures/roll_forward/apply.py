"""Applying completed transactions: batches, waves, savepoints, and who failed why.

A batch of completed transactions (commit order) is applied optimistically:
one JSON parse, calls grouped into waves so that each row sees its calls in log
order while calls on different rows share one executemany per statement. Any
misbehaving call rolls the batch back to its savepoint; it is split until the
culprit transaction is alone, which is then applied call by call in its own
savepoint, so a failing call suppresses exactly its own transaction.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

from runner.engine.action import StepContext
from runner.errors import MediaError
from runner.procedures.roll_forward.catalog import StatementCache
from runner.procedures.roll_forward.logset import LogSet
from runner.procedures.roll_forward.media import (
    CALL_P,
    DELETE,
    PUT,
    SWITCH,
    SWITCH_P,
    TYPE_NAMES,
    iter_chunks,
    read_header,
)

MAX_SUPPRESSED_KEYS = 20_000


class Txn:
    """A transaction seen in the log whose END has not been applied yet."""

    __slots__ = (
        "alias",
        "begin_us",
        "calls",
        "end_seq",
        "end_us",
        "file_no",
        "first_seq",
        "jsons",
        "keys",
        "offset",
        "session",
        "txn",
    )

    def __init__(
        self, txn: int, session: int, alias: str, begin_us: int, seq: int, file_no: int, off: int
    ) -> None:
        self.txn = txn
        self.session = session
        self.alias = alias
        self.begin_us = begin_us
        self.first_seq = seq
        self.file_no = file_no
        self.offset = off
        # per call: (alias, type, descriptor) and the raw JSON values; None once spilled
        self.keys: list[tuple[str, int, bytes]] | None = []
        self.jsons: list[bytes] = []
        self.calls = 0  # counted only once spilled; until then len(jsons)
        self.end_seq: int | None = None
        self.end_us: int | None = None


def _norm(value: Any) -> Any:
    """A row key as SQLite would compare it, erring towards "same row" (only ever safe).

    1, 1.0, True and "1" can all name rowid 1; anything unhashable is left to fail.
    """
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        return number if number == number and abs(number) != float("inf") else value
    if isinstance(value, (int, float)):
        return float(value) if value == value else repr(value)
    return value


class _Anomaly(Exception):
    """A batch cannot be applied optimistically; replay it carefully."""


class BatchApplier:
    """The applying half of Replay (see replay.py for the reading half)."""

    ctx: StepContext
    db: sqlite3.Connection
    logset: LogSet
    stmts: StatementCache
    open: dict[int, Txn]
    suppressed: dict[tuple[str, str, str], tuple[int, str]]
    _sql: dict[tuple[Any, ...], tuple[str, int, str, bool]]

    def _row(self, t: Txn, status: str, reason: str | None, detail: str | None) -> None:
        raise NotImplementedError

    def _remember(self, t: Txn, table: str, key: str, reason: str) -> None:
        raise NotImplementedError

    def _applied(self, txns: list[Txn]) -> None:
        raise NotImplementedError

    def _apply_group(self, txns: list[Txn]) -> None:
        """Optimistically in one savepoint; on trouble, split until the culprit is alone."""
        if len(txns) <= 2:
            for t in txns:
                self._apply_careful(t)
            return
        db = self.db
        db.execute("SAVEPOINT rf_batch")
        try:
            self._apply_fast(txns)
        except (
            _Anomaly,
            TypeError,
            KeyError,
            IndexError,
            sqlite3.IntegrityError,
            sqlite3.InterfaceError,
            sqlite3.ProgrammingError,
            sqlite3.DataError,
            ValueError,
        ):
            db.execute("ROLLBACK TO rf_batch")
            db.execute("RELEASE rf_batch")
            # Eight parts, in order: only the part holding the culprit is tried again,
            # so a failure costs about one extra pass over the batch, not two.
            step = -(-len(txns) // 8)
            for at in range(0, len(txns), step):
                self._apply_group(txns[at : at + step])
            return
        db.execute("RELEASE rf_batch")
        self._applied(txns)

    def _apply_fast(self, txns: list[Txn]) -> None:
        """All calls of `txns`, one JSON parse, grouped into as few executemany as allowed.

        Calls are put in waves: a call goes one wave after the previous call on the
        same row (or into the same wave and group when that call used the same
        statement), so every row sees its calls in log order while calls on
        different rows, which commute, share one executemany per statement. Each
        call therefore meets exactly the row state it would in strict order, and
        fails exactly when it would: any failure sends the batch to the careful path.
        """
        fulls: list[tuple[Any, ...]] = []
        parts: list[bytes] = []
        for t in txns:
            assert t.keys is not None
            fulls += t.keys
            parts += t.jsons
        rows = json.loads(b"[" + b",".join(parts) + b"]")
        known = self._sql
        statement = self._statement
        waves: list[dict[tuple[Any, ...], list[Any]]] = [{}]
        last: dict[tuple[Any, ...], tuple[int, tuple[Any, ...]]] = {}
        for full, row in zip(fulls, rows, strict=True):
            info = known.get(full) or statement(full)
            if not info[3]:
                # a table where order matters: strict log order for the whole batch
                self._apply_in_order(fulls, rows)
                return
            value = row[0]
            rowkey = (info[2], value if type(value) is int else _norm(value))
            prev = last.get(rowkey)
            if prev is None:
                wave = 0
            elif prev[1] == full:
                wave = prev[0]
            else:
                wave = prev[0] + 1
                if wave == len(waves):
                    waves.append({})
            last[rowkey] = (wave, full)
            group = waves[wave].get(full)
            if group is None:
                waves[wave][full] = [row]
            else:
                group.append(row)
        executemany = self.db.executemany
        for wave_groups in waves:
            for full, group in wave_groups.items():
                sql, rtype, _table, _free = known[full]
                cursor = executemany(sql, group)
                if rtype != PUT and cursor.rowcount != len(group):
                    raise _Anomaly("a key was missing")

    def _apply_in_order(self, fulls: list[tuple[Any, ...]], rows: list[Any]) -> None:
        executemany = self.db.executemany
        start = 0
        for i in range(1, len(fulls) + 1):
            if i == len(fulls) or fulls[i] != fulls[start]:
                sql, rtype, _table, _free = self._statement(fulls[start])
                cursor = executemany(sql, rows[start:i])
                if rtype != PUT and cursor.rowcount != i - start:
                    raise _Anomaly("a key was missing")
                start = i

    def _statement(self, full: tuple[Any, ...]) -> tuple[str, int, str, bool]:
        known = self._sql.get(full)
        if known is None:
            alias, rtype, desc = full
            stmt = self.stmts.get(alias, rtype, desc)
            if stmt.sql is None:
                raise _Anomaly(stmt.problem)
            table = f"{alias}.{stmt.table}"
            known = self._sql[full] = (stmt.sql, rtype, table, stmt.independent)
        return known

    def _apply_careful(self, t: Txn) -> None:
        assert t.keys is not None
        calls = ((rtype, desc, raw) for (_a, rtype, desc), raw in zip(t.keys, t.jsons, strict=True))
        self._apply_calls(t, calls)

    def _apply_calls(self, t: Txn, calls: Iterator[tuple[int, bytes, bytes]]) -> None:
        """Apply one transaction call by call; on the first failure undo it all."""
        db = self.db
        db.execute("SAVEPOINT rf_txn")
        failure: tuple[str, str, str] | None = None  # (table, key, why)
        for number, (rtype, desc, raw) in enumerate(calls, start=1):
            failure = self._apply_one(t.alias, rtype, desc, raw, number)
            if failure is not None:
                break
        if failure is None:
            db.execute("RELEASE rf_txn")
            self._applied([t])
            return
        db.execute("ROLLBACK TO rf_txn")
        db.execute("RELEASE rf_txn")
        table, key, why = failure
        reason, detail = "failed", why
        cause = self._cause(t, table, key)
        if cause is not None:
            reason = "dependent"
            detail = f"{why}; {cause}"
        self._remember_keys(t, reason)
        self._row(t, "suppressed", reason, detail)

    def _apply_one(
        self, alias: str, rtype: int, desc: bytes, raw: bytes, number: int
    ) -> tuple[str, str, str] | None:
        stmt = self.stmts.get(alias, rtype, desc)
        verb = TYPE_NAMES[rtype]
        try:
            params = json.loads(raw)
            key = json.dumps(params[0])
        except (ValueError, IndexError, TypeError, KeyError):
            return (
                stmt.table,
                "?",
                f"call {number} ({verb} on {stmt.table}) has unreadable values",
            )
        if stmt.sql is None:
            return (
                stmt.table,
                key,
                f"call {number} ({verb} on {stmt.table}) cannot be replayed: {stmt.problem}",
            )
        try:
            cursor = self.db.execute(stmt.sql, params)
        except sqlite3.IntegrityError as exc:
            text = str(exc)
            why = "the key already exists" if "UNIQUE" in text or "PRIMARY" in text else text
            return (
                stmt.table,
                key,
                f"call {number} ({verb} of key {key} in {stmt.table}) failed: {why}",
            )
        except (sqlite3.InterfaceError, sqlite3.ProgrammingError, sqlite3.DataError) as exc:
            return (
                stmt.table,
                key,
                f"call {number} ({verb} on {stmt.table}) has values that do not fit: {exc}",
            )
        if rtype != PUT and cursor.rowcount != 1:
            return (
                stmt.table,
                key,
                f"call {number} ({verb} of key {key} in {stmt.table}) failed: no such key",
            )
        return None

    def _cause(self, t: Txn, table: str, key: str) -> str | None:
        """Which suppressed or unfinished transaction last wrote this key, if any."""
        known = self.suppressed.get((t.alias, table, key))
        if known is not None:
            return f"it depends on transaction {known[0]}, which was suppressed ({known[1]})"
        assert t.end_seq is not None
        for other in self.open.values():
            if other.alias != t.alias or other.first_seq > t.end_seq or other.keys is None:
                continue
            for (_a, _rtype, desc), raw in zip(other.keys, other.jsons, strict=True):
                if not desc.startswith(table.encode() + b"("):
                    continue
                try:
                    if json.dumps(json.loads(raw)[0]) == key:
                        return (
                            f"it depends on transaction {other.txn}, which had not "
                            "completed when this one ended"
                        )
                except (ValueError, IndexError, TypeError, KeyError):
                    continue
        return None

    def _remember_keys(self, t: Txn, reason: str) -> None:
        if t.keys is None or len(self.suppressed) >= MAX_SUPPRESSED_KEYS:
            return
        for (_a, _rtype, desc), raw in zip(t.keys, t.jsons, strict=True):
            table = desc.split(b"(", 1)[0].decode("ascii", "replace")
            try:
                key = json.dumps(json.loads(raw)[0])
            except (ValueError, IndexError, TypeError, KeyError):
                continue
            self._remember(t, table, key, reason)

    def _apply_spilled(self, t: Txn) -> None:
        """A transaction too big to buffer: stream its calls again from its BEGIN."""
        self._apply_calls(t, self._calls_of(t))

    def _calls_of(self, t: Txn) -> Iterator[tuple[int, bytes, bytes]]:
        file_no, offset, seq = t.file_no, t.offset, t.first_seq
        assert t.end_seq is not None
        while True:
            rel = self.logset.rel(file_no)
            switch = None
            with self.ctx.media.open(rel) as handle:
                header = read_header(handle, rel)
                for chunk in iter_chunks(handle, file_no, offset or header.size, seq):
                    for rseq, rtype, payload, _off in chunk.records:
                        if rseq >= t.end_seq:
                            return
                        if PUT <= rtype <= DELETE:
                            txn, dlen = CALL_P.unpack_from(payload)
                            if txn == t.txn:
                                yield rtype, payload[6 : 6 + dlen], payload[6 + dlen :]
                        elif rtype == SWITCH:
                            switch = SWITCH_P.unpack_from(payload)[0]
                        seq = rseq + 1
                    if chunk.damage is not None:
                        raise MediaError(f"{rel} changed while being replayed")
            if switch is None:
                raise MediaError(f"the calls of transaction {t.txn} could not be read again")
            file_no, offset = switch, 0
