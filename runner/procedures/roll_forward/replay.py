"""Replaying a log set into the attached databases: the applying side and checkpoints.

The log is read by reader.LogReader, which hands over planned batches of
completed transactions (commit order), warnings, checkpoints and the end. Here
each batch is applied (batches.BatchApplier) and its rf_recovery rows written in
the same transaction; at each checkpoint the batches applied so far commit
together with the position reached and the earliest BEGIN of every still-open
transaction ("rescan"): a resumed run reads again from there, rebuilds the open
buffers, and skips every transaction that ended before the checkpoint. So an
interrupted replay ends exactly as an uninterrupted one, and memory holds only
open transactions and a batch or two.

On a machine with two cores and a log worth it, the reader runs ahead in a
forked process (reader.read_ahead): it frames, checks and plans the next batch
while this process executes the last one.
"""

from __future__ import annotations

import contextlib
import copy
import os
from typing import Any

from runner.contract import StepContext
from runner.errors import MediaError
from runner.procedures.roll_forward.batches import (
    BatchApplier,
    CallPlanner,
    Meta,
    Txn,
    recovery_row,
)
from runner.procedures.roll_forward.catalog import (
    RECOVERY_INSERT,
    RECOVERY_INSERT_APPLIED,
    StatementCache,
    write_flags,
)
from runner.procedures.roll_forward.logset import LogSet
from runner.procedures.roll_forward.reader import (
    LogReader,
    Message,
    Options,
    ReplayState,
    Stop,
    read_ahead,
)

# Page cache per database being rolled forward. SQLite's default (2 MiB) is far
# smaller than the pages one long transaction dirties, so it spills dirty pages
# mid-transaction (each spill syncs the journal under synchronous=FULL) and reads
# them back: about 40% of the SQL time at 1 million records. Bounded, so memory
# stays flat whatever the log size.
CACHE_KIB = 16 * 1024
# Below this much log to read, a second process costs more than it saves.
READ_AHEAD_BYTES = 8 << 20


LOG_READ = "log bytes read"


class LogBytes:
    """How far into the log set a position is, in bytes from where reading started
    (the files from `start` on), for the progress shown while the log is read."""

    def __init__(self, paths: dict[int, str], start: int) -> None:
        self.before: dict[int, int] = {}
        self.total = 0
        for number in sorted(n for n in paths if n >= start):
            self.before[number] = self.total
            with contextlib.suppress(OSError):  # a file that cannot be read says so later
                self.total += os.path.getsize(paths[number])

    def upto(self, file_no: int, offset: int) -> int:
        return min(self.total, self.before.get(file_no, self.total) + offset)


def _cores() -> int:
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


class Replay(BatchApplier):
    """Drives one roll forward over a log set for the target databases."""

    def __init__(
        self,
        ctx: StepContext,
        logset: LogSet,
        state: ReplayState,
        options: Options,
        reader: str = "auto",
    ) -> None:
        self.ctx = ctx
        self.db = ctx.db
        self.logset = logset
        self.st = state
        self.opt = options
        self.reader_mode = reader
        self.aliases = state.targets  # database name -> alias
        self.stmts = StatementCache(ctx.db, self.aliases.values())
        self.planner = CallPlanner(self.stmts)
        self._sql = {}
        self.open: dict[int, Txn] = {}
        self.rows: dict[str, list[tuple[Any, ...]]] = {}  # rf_recovery rows but applied ones
        self.applied_rows: dict[str, list[tuple[Any, ...]]] = {}
        self.suppressed: dict[tuple[str, str, str], tuple[int, str]] = {
            (a, t, k): (int(n), r) for a, t, k, n, r in state.suppressed_keys
        }

    # -- the main loop -----------------------------------------------------
    def run(self) -> Stop:
        for alias in self.aliases.values():
            self.db.execute(f"PRAGMA {alias}.cache_size = -{CACHE_KIB}")
        reader = LogReader(self.logset, self._paths(), self.st, self.opt, self.stmts)
        read = LogBytes(reader.paths, int((self.st.rescan or self.st.pos)[0]))
        messages = read_ahead(reader) if self._ahead(reader) else reader.messages()
        try:
            for message in self.ctx.progress(messages, None, LOG_READ):
                if message[0] == "progress":
                    self.ctx.advance(LOG_READ, read.upto(message[2], message[3]), read.total)
                stop = self._take(message)
                if stop is not None:
                    return stop
        finally:
            messages.close()  # stops a reader process at once, whatever happened here
        raise MediaError("the log reader stopped before the end of the log", fix="run again")

    def _paths(self) -> dict[int, str]:
        return {n: str(self.ctx.media.path(self.logset.rel(n))) for n in self.logset.headers}

    def _ahead(self, reader: LogReader) -> bool:
        if self.reader_mode != "auto":
            return self.reader_mode == "process" and hasattr(os, "fork")
        return hasattr(os, "fork") and _cores() >= 2 and reader.bytes_to_read() >= READ_AHEAD_BYTES

    def _take(self, message: Message) -> Stop | None:
        """Do what one message of the reader says; the Stop once it ends."""
        kind = message[0]
        if kind == "batch":
            _kind, plan, metas, start, rows, opens, upto = message
            self._add_rows(rows)
            if metas:
                self._apply_batch(plan, metas, start, opens, upto)
            self._written()
        elif kind == "spilled":
            _kind, meta, where, opens, upto = message
            self._apply_spilled(meta, where, opens, upto)
            self._written()
        elif kind == "warn":
            self.ctx.warn(message[1])
        elif kind == "checkpoint":
            self._checkpoint(message[1], message[2])
        elif kind == "end":
            _kind, (stop_kind, detail, needed), fields, rows = message
            self.st.merge(fields)
            self._add_rows(rows)
            self._write_rows()
            return Stop(stop_kind, detail, needed)
        elif kind == "error":
            _kind, text, fix, fields = message
            self.st.merge(fields)
            raise MediaError(text, fix=fix)
        return None

    # -- outcomes ----------------------------------------------------------
    def _written(self) -> None:
        """After a batch: its rf_recovery rows go with it (the same transaction), so
        memory holds one batch's rows, not a checkpoint's."""
        last = self._last_applied()
        if last is not None:
            self.st.last_ok = last
        self._write_rows()

    def _add_rows(self, rows: dict[str, list[Any]]) -> None:
        for alias, more in rows.items():
            self.rows.setdefault(alias, []).extend(more)

    def _remember(self, t: Txn, table: str, key: str, reason: str) -> None:
        """A key written by a suppressed transaction (later failures on it are dependent)."""
        self.suppressed[(t.alias, table, key)] = (t.txn, reason)
        self.st.suppressed_keys.append([t.alias, table, key, t.txn, reason])

    def _row(self, t: Txn, status: str, reason: str | None, detail: str | None) -> None:
        row = recovery_row(t, self.logset.logging_id, status, reason, detail)
        self.rows.setdefault(t.alias, []).append(row)

    def _applied(self, metas: list[Meta]) -> None:
        """The rf_recovery rows of applied transactions: the bulk of them, so they are
        bound without the columns that are constant."""
        by_alias = self.applied_rows
        for meta in metas:
            rows = by_alias.get(meta[0])
            if rows is None:
                rows = by_alias[meta[0]] = []
            rows.append(meta[1:])

    def _last_applied(self) -> dict[str, Any] | None:
        best = None
        for alias, rows in self.applied_rows.items():
            if rows:
                txn, _u, _p, _b, end_us, first, end, _c, _bt, _et = rows[-1]
                if best is None or end > best["end_record"]:
                    best = {
                        "txn": txn,
                        "first_record": first,
                        "end_record": end,
                        "database": alias,
                        "end_us": end_us,
                    }
        return best

    def _write_rows(self) -> None:
        # Raw executemany, not sqlite-utils: the benchmark times these rows (about
        # 5 µs each), and rf_recovery lives in an attached database.
        for alias, rows in self.rows.items():
            if rows:
                self.db.executemany(RECOVERY_INSERT.format(schema=f"{alias}."), rows)
        for alias, rows in self.applied_rows.items():
            if rows:
                sql = RECOVERY_INSERT_APPLIED.format(
                    schema=f"{alias}.", logging_id=self.logset.logging_id
                )
                self.db.executemany(sql, rows)
        self.rows = {}
        self.applied_rows = {}

    def _checkpoint(self, fields: dict[str, Any], seq: int) -> None:
        """Commit the applied batches with the position to resume from."""
        self._write_rows()
        self.st.merge(fields)
        for alias in self.aliases.values():
            write_flags(self.db, alias, {"rolled_forward_to": seq - 1})
        self.ctx.checkpoint(copy.deepcopy(self.st.as_dict()))
