"""Applying completed transactions: plans, savepoints, and who failed why.

A batch of completed transactions (commit order) comes planned from the reader
(reader.py): one JSON parse, its calls grouped into waves so that each row sees
its calls in log order while calls on different rows share one executemany per
statement. It is applied optimistically in one savepoint. Any misbehaving call
rolls the batch back; its calls are then read again from the log and it is
split until the culprit transaction is alone, which is applied call by call in
its own savepoint, so a failing call suppresses exactly its own transaction.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from operator import itemgetter
from typing import Any

from runner.contract import StepContext
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
_first = itemgetter(0)
_EXACT = 1 << 53  # integers a REAL key column holds exactly
CallKey = tuple[str, int, bytes]  # (alias, record type, descriptor): one statement
Plan = list[tuple[CallKey, list[Any]]]  # executemany calls in order
# One completed transaction as the reader hands it over: its alias, then its
# rf_recovery row if applied (txn, user, program, begin_us, end_us, first_seq,
# end_seq, calls, begin_time, end_time)
Meta = tuple[str, int, str, str, int, int, int, int, int, str, str]
Position = tuple[int, int, int]  # (file number, byte offset, record number) of a record
# A transaction still open when a batch is handed over: (txn, alias, first_seq,
# call keys, call values, file number, offset), with its calls so far, or with
# None for them and the position of its BEGIN
Open = tuple[int, str, int, list[CallKey] | None, list[bytes] | None, int, int]


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
        "program",
        "session",
        "txn",
        "user",
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
        self.keys: list[CallKey] | None = []
        self.jsons: list[bytes] = []
        self.calls = 0  # counted only once spilled; until then len(jsons)
        self.end_seq: int | None = None
        self.end_us: int | None = None
        self.user = self.program = "?"  # from the session's identity, when handed over

    def meta(self) -> Meta:
        assert self.end_seq is not None and self.end_us is not None
        calls = self.calls if self.keys is None else len(self.jsons)
        return (
            self.alias,
            self.txn,
            self.user,
            self.program,
            self.begin_us,
            self.end_us,
            self.first_seq,
            self.end_seq,
            calls,
            time_text(self.begin_us),
            time_text(self.end_us),
        )

    @classmethod
    def from_meta(cls, meta: Meta, where: Position = (0, 0, 0)) -> Txn:
        """The transaction again, without its calls (load_calls or calls_of read them)."""
        alias, txn, user, program, begin_us, end_us, first, end, calls, _bt, _et = meta
        t = cls(txn, 0, alias, begin_us, first, where[0], where[1])
        t.user, t.program, t.end_us, t.end_seq, t.calls = user, program, end_us, end, calls
        t.keys = None
        return t


def recovery_row(
    t: Txn, logging_id: int, status: str, reason: str | None, detail: str | None
) -> tuple[Any, ...]:
    """The rf_recovery row (RECOVERY_INSERT) of a transaction not applied."""
    return (
        logging_id,
        t.txn,
        t.user,
        t.program,
        status,
        reason,
        detail,
        t.begin_us,
        t.end_us,
        t.first_seq,
        t.end_seq,
        t.calls if t.keys is None else len(t.jsons),
        time_text(t.begin_us),
        None if t.end_us is None else time_text(t.end_us),
    )


_SECONDS: dict[int, str] = {}
_EPOCH_JD_MS = 210866760000000.0  # the Unix epoch as a Julian day number, in ms
_END_JD_MS = 464269060800000.0  # the end of year 9999, likewise


def time_text(us: int) -> str:
    """A log time as the reports show it: ISO 8601 UTC to the millisecond, exactly
    what SQLite's strftime('%Y-%m-%dT%H:%M:%fZ', us / 1e6, 'unixepoch') gives (the
    same double arithmetic and rounding, so reports read as they always have).

    Made when a transaction is handed over (in the reader's process when it runs
    ahead), so the per-user files need no date arithmetic per line.
    """
    julian = us / 1_000_000.0 * 1000.0 + _EPOCH_JD_MS
    if not 0.0 <= julian < _END_JD_MS:
        return f"{us} us"  # no calendar date: a damaged or hostile time
    seconds, millis = divmod(int(julian + 0.5) - int(_EPOCH_JD_MS), 1000)
    text = _SECONDS.get(seconds)
    if text is None:
        try:
            t = time.gmtime(seconds)
        except (OverflowError, OSError, ValueError):
            return f"{us} us"
        text = (
            f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
            f"T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
        )
        if len(_SECONDS) >= 4096:
            _SECONDS.clear()
        _SECONDS[seconds] = text
    return f"{text}.{millis:03d}Z"


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


# What planning or applying a batch optimistically may raise on bad calls: the
# batch is then applied carefully, where each error is pinned on its transaction.
PLAN_ERRORS = (_Anomaly, TypeError, KeyError, IndexError, ValueError, RecursionError)
APPLY_ERRORS = (
    *PLAN_ERRORS,
    OverflowError,  # an integer SQLite cannot hold
    sqlite3.IntegrityError,
    sqlite3.InterfaceError,
    sqlite3.ProgrammingError,
    sqlite3.DataError,
)


class CallPlanner:
    """Turns a batch's buffered calls into the executemany calls that apply it."""

    def __init__(self, stmts: StatementCache) -> None:
        self.stmts = stmts
        self._known: dict[CallKey, tuple[str, bool]] = {}  # -> (alias.table, independent)

    def plan(self, txns: list[Txn]) -> Plan:
        """All calls of `txns`, one JSON parse, grouped into as few executemany as allowed.

        Calls are put in waves: a call goes one wave after the previous call on the
        same row (or into the same wave and group when that call used the same
        statement), so every row sees its calls in log order while calls on
        different rows, which commute, share one executemany per statement. Each
        call therefore meets exactly the row state it would in strict order, and
        fails exactly when it would. Raises one of PLAN_ERRORS when a call cannot
        be planned (the careful path then finds its transaction).
        """
        fulls: list[CallKey] = []
        parts: list[bytes] = []
        for t in txns:
            assert t.keys is not None
            fulls += t.keys
            parts += t.jsons
        rows = json.loads(b"[" + b",".join(parts) + b"]")
        known = self._known
        info_of = self._info
        waves: list[dict[CallKey, list[Any]]] = [{}]
        last: dict[tuple[Any, ...], tuple[int, CallKey]] = {}
        for full, row in zip(fulls, rows, strict=True):
            info = known.get(full) or info_of(full)
            if not info[1]:
                return _in_order(fulls, rows)  # a table where order matters
            value = row[0]
            rowkey = (info[0], value if type(value) is int else _norm(value))
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
        return [(full, _by_key(group)) for wave in waves for full, group in wave.items()]

    def _info(self, full: CallKey) -> tuple[str, bool]:
        alias, rtype, desc = full
        stmt = self.stmts.get(alias, rtype, desc)
        if stmt.sql is None:
            raise _Anomaly(stmt.problem)
        known = self._known[full] = (f"{alias}.{stmt.table}", stmt.independent)
        return known


def _by_key(rows: list[Any]) -> list[Any]:
    """A group's calls in key order, when every key is a plain integer.

    Distinct integers below 2**53 name distinct rows whatever the key column's
    type and collation, and a stable sort keeps the calls on one row in log
    order; so the order does not change the outcome, and key order walks the
    table's B-tree once instead of jumping about (10 to 30% less SQL time on the
    benchmark). Other keys stay as logged: "1" and "1.0", or "abc" and "ABC"
    under NOCASE, can name one row without comparing equal.
    """
    if len(rows) < 2:
        return rows
    for row in rows:
        key = row[0]
        if type(key) is not int or not -_EXACT < key < _EXACT:
            return rows
    return sorted(rows, key=_first)


def _in_order(fulls: list[CallKey], rows: list[Any]) -> Plan:
    """Strict log order: one executemany per run of consecutive same-statement calls."""
    plan: Plan = []
    start = 0
    for i in range(1, len(fulls) + 1):
        if i == len(fulls) or fulls[i] != fulls[start]:
            plan.append((fulls[start], rows[start:i]))
            start = i
    return plan


class BatchApplier:
    """The applying half of Replay (reader.py is the reading half)."""

    ctx: StepContext
    db: sqlite3.Connection
    logset: LogSet
    stmts: StatementCache
    planner: CallPlanner
    open: dict[int, Txn]  # while a failing batch is sorted out: the transactions still open
    suppressed: dict[tuple[str, str, str], tuple[int, str]]
    _sql: dict[CallKey, tuple[str, int]]

    def _row(self, t: Txn, status: str, reason: str | None, detail: str | None) -> None:
        raise NotImplementedError

    def _remember(self, t: Txn, table: str, key: str, reason: str) -> None:
        raise NotImplementedError

    def _applied(self, metas: list[Meta]) -> None:
        raise NotImplementedError

    def _apply_batch(
        self, plan: Plan | None, metas: list[Meta], start: Position, opens: list[Open], upto: int
    ) -> None:
        """A batch as the reader planned it; if it misbehaves, transaction by transaction."""
        if plan is not None:
            self.db.execute("SAVEPOINT rf_batch")
            try:
                self._execute(plan)
            except APPLY_ERRORS:
                self.db.execute("ROLLBACK TO rf_batch")
                self.db.execute("RELEASE rf_batch")
            else:
                self.db.execute("RELEASE rf_batch")
                self._applied(metas)
                return
        txns = [Txn.from_meta(meta) for meta in metas]
        self._keep_open(opens, upto)
        self._load_calls(txns, start, upto)
        if plan is None or len(txns) <= 2:
            self._apply_group(txns)
        else:
            self._split(txns)  # the whole batch just failed: no second try of it

    def _apply_spilled(self, meta: Meta, where: Position, opens: list[Open], upto: int) -> None:
        """A transaction too big to buffer: stream its calls again from its BEGIN."""
        t = Txn.from_meta(meta, where)
        self._keep_open(opens, upto)
        self._apply_calls(t, self._calls_of(t))

    def _keep_open(self, opens: list[Open], upto: int) -> None:
        """The transactions still open at record `upto` with their calls so far, for
        telling which failures depend on them."""
        self.open = {}
        for txn, alias, first, keys, jsons, file_no, offset in opens:
            t = self.open[txn] = Txn(txn, 0, alias, 0, first, file_no, offset)
            if keys is not None and jsons is not None:
                t.keys, t.jsons = keys, jsons
            else:
                self._load_calls([t], (file_no, offset, first), upto)

    def _execute(self, plan: Plan) -> None:
        executemany = self.db.executemany  # raw sqlite3: the measured hot path
        sql_of = self._sql
        for full, rows in plan:
            known = sql_of.get(full)
            if known is None:
                stmt = self.stmts.get(*full)
                if stmt.sql is None:
                    raise _Anomaly(stmt.problem)
                known = sql_of[full] = (stmt.sql, full[1])
            sql, rtype = known
            cursor = executemany(sql, rows)
            if rtype != PUT and cursor.rowcount != len(rows):
                raise _Anomaly("a key was missing")

    def _apply_group(self, txns: list[Txn]) -> None:
        """Optimistically in one savepoint; on trouble, split until the culprit is alone."""
        if len(txns) <= 2:
            for t in txns:
                self._apply_careful(t)
            return
        db = self.db
        db.execute("SAVEPOINT rf_batch")
        try:
            self._execute(self.planner.plan(txns))
        except APPLY_ERRORS:
            db.execute("ROLLBACK TO rf_batch")
            db.execute("RELEASE rf_batch")
            self._split(txns)
            return
        db.execute("RELEASE rf_batch")
        self._applied([t.meta() for t in txns])

    def _split(self, txns: list[Txn]) -> None:
        """Eight parts, in order: only the part holding the culprit is tried again,
        so a failure costs about one extra pass over the batch, not two."""
        step = -(-len(txns) // 8)
        for at in range(0, len(txns), step):
            self._apply_group(txns[at : at + step])

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
            self._applied([t.meta()])
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
        except (ValueError, IndexError, TypeError, KeyError, RecursionError):
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
        except (
            sqlite3.InterfaceError,
            sqlite3.ProgrammingError,
            sqlite3.DataError,
            OverflowError,
        ) as exc:
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
                except (ValueError, IndexError, TypeError, KeyError, RecursionError):
                    continue
        return None

    def _remember_keys(self, t: Txn, reason: str) -> None:
        if t.keys is None or len(self.suppressed) >= MAX_SUPPRESSED_KEYS:
            return
        for (_a, _rtype, desc), raw in zip(t.keys, t.jsons, strict=True):
            table = desc.split(b"(", 1)[0].decode("ascii", "replace")
            try:
                key = json.dumps(json.loads(raw)[0])
            except (ValueError, IndexError, TypeError, KeyError, RecursionError):
                continue
            self._remember(t, table, key, reason)

    def _calls_of(self, t: Txn) -> Iterator[tuple[int, bytes, bytes]]:
        """A spilled transaction's calls, streamed from its BEGIN."""
        assert t.end_seq is not None
        for _seq, rtype, payload in self._records(t.file_no, t.offset, t.first_seq, t.end_seq):
            if PUT <= rtype <= DELETE and len(payload) >= CALL_P.size:
                txn, dlen = CALL_P.unpack_from(payload)
                if txn == t.txn:
                    yield rtype, payload[6 : 6 + dlen], payload[6 + dlen :]

    def _load_calls(self, txns: list[Txn], start: Position, upto: int) -> None:
        """The calls of these transactions, read again from `start` (the earliest
        BEGIN among them) up to record `upto`."""
        wanted: dict[int, list[Txn]] = {}  # a number ended may be reused by one still open
        for t in txns:
            t.keys, t.jsons = [], []
            wanted.setdefault(t.txn, []).append(t)
        for rseq, rtype, payload in self._records(*start, upto):
            if PUT <= rtype <= DELETE and len(payload) >= CALL_P.size:
                txn, dlen = CALL_P.unpack_from(payload)
                for t in wanted.get(txn, ()):
                    if t.first_seq < rseq and (t.end_seq is None or rseq < t.end_seq):
                        assert t.keys is not None
                        t.keys.append((t.alias, rtype, payload[6 : 6 + dlen]))
                        t.jsons.append(payload[6 + dlen :])

    def _records(
        self, file_no: int, offset: int, seq: int, upto: int
    ) -> Iterator[tuple[int, int, bytes]]:
        """(seq, type, payload) of the log's records from `seq` up to (not including)
        `upto`, across file switches; they were read once, so they must all be there."""
        while seq < upto:
            rel = self.logset.rel(file_no)
            switch = None
            with self.ctx.media.open(rel) as handle:
                header = read_header(handle, rel)
                for chunk in iter_chunks(handle, file_no, offset or header.size, seq):
                    for rseq, rtype, payload, _off in chunk.records:
                        if rseq >= upto:
                            return
                        yield rseq, rtype, payload
                        if rtype == SWITCH:
                            switch = SWITCH_P.unpack_from(payload)[0]
                        seq = rseq + 1
                    if chunk.damage is not None and seq < upto:
                        raise MediaError(
                            f"{rel} changed while being replayed (record {seq})",
                            fix="leave the log files alone during a roll forward; run again",
                        )
            if seq >= upto:
                return
            if switch is None:
                raise MediaError(
                    f"{rel} ended while being replayed again (record {seq})",
                    fix="leave the log files alone during a roll forward; run again",
                )
            file_no, offset = switch, 0
