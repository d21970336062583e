"""Replaying a log set into the attached databases: reading, state, checkpoints.

One pass over the log, in log order. Each transaction's calls are buffered
(statement key and raw JSON values) until its END record; completed
transactions are applied in commit order in batches by apply.BatchApplier.

Checkpoints commit the applied batches together with the position reached and
the earliest BEGIN of every still-open transaction ("rescan"): a resumed run
reads again from there, rebuilds the open buffers, and skips every transaction
that ended before the checkpoint. So an interrupted replay ends exactly as an
uninterrupted one, and memory holds only open transactions and one batch.
"""

from __future__ import annotations

import copy
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, NoReturn

from runner.engine.action import StepContext
from runner.errors import MediaError
from runner.procedures.roll_forward.apply import BatchApplier, Txn
from runner.procedures.roll_forward.catalog import (
    RECOVERY_INSERT,
    RECOVERY_INSERT_APPLIED,
    StatementCache,
    write_flags,
)
from runner.procedures.roll_forward.logset import LogSet
from runner.procedures.roll_forward.media import (
    BEGIN,
    BEGIN_P,
    CALL_P,
    CYCLE_START,
    DELETE,
    END,
    END_P,
    IDENTITY,
    MAX_PAYLOAD,
    PUT,
    RECORD,
    RECORD_SIZE,
    ROLLBACK,
    SWITCH,
    SWITCH_P,
    TIME,
    TIME_P,
    TYPE_NAMES,
    Damage,
    iso_us,
    parse_identity,
    read_header,
)

STATE_VERSION = 1
NEVER = 1 << 63  # a stop time no record reaches (no stop_at)
CALL_HEAD = struct.Struct("<IIQBIH")  # a record header and a call's (txn, descriptor length)
CALL_HEAD_SIZE = CALL_HEAD.size
CHUNK_BYTES = 1 << 20
# Page cache per database being rolled forward. SQLite's default (2 MiB) is far
# smaller than the pages one long transaction dirties, so it spills dirty pages
# mid-transaction (each spill syncs the journal under synchronous=FULL) and reads
# them back: about 40% of the SQL time at 1 million records. Bounded, so memory
# stays flat whatever the log size.
CACHE_KIB = 16 * 1024


@dataclass
class Options:
    stop_us: int | None = None
    checkpoint_records: int = 1_000_000
    flush_calls: int = 20_000
    spill_calls: int = 50_000
    chunk_records: int = 4096


@dataclass
class Stop:
    """Why the replay ended."""

    kind: str  # "end" (end of log), "damage", "stop_time", "missing_file"
    detail: str = ""
    needed_file: str | None = None


@dataclass
class ReplayState:
    """Everything a checkpoint carries (JSON-serialisable through as_dict)."""

    targets: dict[str, str]
    pos: list[Any]  # [file, offset (0 = just after the header), next seq]
    rescan: list[Any] | None = None
    sessions: dict[str, list[Any]] = field(default_factory=dict)
    records: int = 0
    files_read: list[int] = field(default_factory=list)
    first_us: int | None = None
    last_us: int | None = None
    last_ok: dict[str, Any] | None = None
    last_txn_record: dict[str, Any] | None = None
    other_txns: int = 0
    warnings: list[str] = field(default_factory=list)
    suppressed_keys: list[list[Any]] = field(default_factory=list)
    stop: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        # targets as pairs: the journal may sort keys, and report order must not change
        return {"v": STATE_VERSION, **self.__dict__, "targets": list(self.targets.items())}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReplayState:
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        fields["targets"] = {name: alias for name, alias in fields["targets"]}
        return cls(**fields)


class Replay(BatchApplier):
    """Drives one roll-forward over a log set for the target databases."""

    def __init__(
        self, ctx: StepContext, logset: LogSet, state: ReplayState, options: Options
    ) -> None:
        self.ctx = ctx
        self.db = ctx.db
        self.logset = logset
        self.st = state
        self.opt = options
        self.aliases = state.targets  # database name -> alias
        self.stmts = StatementCache(ctx.db)
        self._sql: dict[tuple[Any, ...], tuple[str, int, str, bool]] = {}
        self.open: dict[int, Txn] = {}
        self.others: dict[int, list[Any]] = {}  # other databases' open txns -> begin position
        self.pending: list[Txn] = []
        self.pending_calls = 0
        self.rows: dict[str, list[tuple[Any, ...]]] = {}  # rf_recovery rows but applied ones
        self.applied_rows: dict[str, list[tuple[Any, ...]]] = {}
        self.resume_seq = int(state.pos[2])
        self.seq = self.resume_seq
        self.switch_to: int | None = None
        self.stop: Stop | None = None
        self.since_checkpoint = 0
        self.file_no = int(state.pos[0])
        self.offset = int(state.pos[1])
        self._who: dict[int, tuple[str, str]] = {}
        self._last: tuple[Any, ...] | None = None
        self.suppressed: dict[tuple[str, str, str], tuple[int, str]] = {
            (a, t, k): (int(n), r) for a, t, k, n, r in state.suppressed_keys
        }

    # -- the main loop -----------------------------------------------------
    def run(self) -> Stop:
        for alias in self.aliases.values():
            self.db.execute(f"PRAGMA {alias}.cache_size = -{CACHE_KIB}")
        start = self.st.rescan or self.st.pos
        for _count in self.ctx.progress(self._scan(start), None, "log records"):
            if self.stop is not None:
                break
            if self.switch_to is not None:
                self.st.pos = [self.switch_to, 0, self.seq]
            else:
                self.st.pos = [self.file_no, self.offset, self.seq]
            if self.pending_calls >= self.opt.flush_calls:
                self._flush()
            if self.since_checkpoint >= self.opt.checkpoint_records:
                self.checkpoint()
        if self.stop is None:
            self.stop = Stop("end", "the log ends cleanly")
        self._flush()
        if self.stop.kind == "missing_file":
            self.checkpoint()
            return self.stop
        self.st.pos = [self.file_no, 0, self.seq]  # finished: only the record count matters
        self._suppress_open()
        self._write_rows()
        self.keep_last_record()
        self.st.stop = {"kind": self.stop.kind, "detail": self.stop.detail}
        return self.stop

    def _scan(self, start: list[Any]) -> Iterator[int]:
        """The files of the set from `start`, following switch records."""
        file_no, offset, seq = int(start[0]), int(start[1]), int(start[2])
        while True:
            rel = self.logset.rel(file_no)
            if file_no not in self.logset.headers:
                self.stop = Stop(
                    "missing_file",
                    f"the log continues in {rel}, which is not in logs/",
                    needed_file=rel,
                )
                return
            self.file_no = file_no
            if file_no not in self.st.files_read:
                self.st.files_read.append(file_no)
            with self.ctx.media.open(rel) as handle:
                header = read_header(handle, rel)
                if offset == 0:
                    offset = header.size
                    if header.first_seq != seq:
                        raise MediaError(
                            f"{rel} starts at record {header.first_seq}, expected {seq}: "
                            "the log is discontinuous",
                            fix=f"supply the right {rel}",
                        )
                verify = file_no == self.logset.last_file
                yield from self._scan_file(handle, file_no, offset, seq, verify)
            if self.stop is not None or self.switch_to is None:
                return  # stopped, damaged, or the end of the log
            file_no, offset, seq = self.switch_to, 0, self.seq
            self.switch_to = None

    def _scan_file(
        self, handle: BinaryIO, file_no: int, offset: int, seq: int, verify: bool
    ) -> Iterator[int]:
        """Frame and process one file's records; yields after each chunk of them.

        The framing is media.iter_chunks' (same checks, same Damage), fused with
        the processing of calls, begins and ends because this loop runs once per
        record of the whole log and dominates the replay's Python time: no payload
        copies, no call per record, state kept in locals and written back at the
        end of each chunk (and before anything that reads it).
        """
        handle.seek(offset)
        buf = b""
        pos = 0
        base = offset  # file offset of buf[0]
        eof = False
        need = 0
        unpack = RECORD.unpack_from
        unpack_head = CALL_HEAD.unpack_from
        unpack_begin = BEGIN_P.unpack_from
        unpack_end = END_P.unpack_from
        unpack_time = TIME_P.unpack_from
        crc32 = zlib.crc32
        opened = self.open
        others = self.others
        spill = self.opt.spill_calls
        resume = self.resume_seq
        limit = self.opt.chunk_records
        stop_us = NEVER if self.opt.stop_us is None else self.opt.stop_us
        by_name = {name.encode("ascii"): alias for name, alias in self.aliases.items()}
        st = self.st
        begin_size = BEGIN_P.size
        while True:
            if not eof and (need or len(buf) - pos < CHUNK_BYTES):
                more = handle.read(max(CHUNK_BYTES, need))
                if more:
                    buf = buf[pos:] + more
                    base += pos
                    pos = 0
                else:
                    eof = True
            need = 0
            n = len(buf)
            first = seq
            damage = None
            count = 0
            first_us = st.first_us
            last_us = st.last_us
            last = self._last
            try:
                while count < limit:
                    if n - pos >= CALL_HEAD_SIZE:
                        # with a call's own header, which most records are: one unpack
                        crc, length, rseq, rtype, txn, dlen = unpack_head(buf, pos)
                    elif n - pos >= RECORD_SIZE:
                        crc, length, rseq, rtype = unpack(buf, pos)
                        txn, dlen = -1, 0
                    else:
                        if n > pos:
                            if eof:
                                damage = Damage(base + pos, seq, "truncated")
                            else:
                                need = RECORD_SIZE
                        break
                    if length > MAX_PAYLOAD:
                        damage = Damage(base + pos, seq, "length")
                        break
                    body = pos + RECORD_SIZE
                    end = body + length
                    if end > n:
                        if eof:
                            damage = Damage(base + pos, seq, "truncated")
                        else:
                            need = end - n
                        break
                    if verify and crc32(buf[pos + 4 : end]) != crc:
                        damage = Damage(base + pos, seq, "checksum")
                        break
                    if rseq != seq:
                        damage = Damage(base + pos, seq, "sequence")
                        break
                    if PUT <= rtype <= DELETE:
                        if length < CALL_P.size:
                            txn = -1  # too short to name its transaction: no begin matches
                        t = opened.get(txn)
                        if t is not None:
                            keys = t.keys
                            if keys is not None:
                                cut = body + 6 + dlen
                                keys.append((t.alias, rtype, buf[body + 6 : cut]))
                                jsons = t.jsons
                                jsons.append(buf[cut:end])
                                if len(jsons) > spill:
                                    t.calls = len(jsons)
                                    t.keys = None  # re-read from its begin when it ends
                                    t.jsons = []
                            else:
                                t.calls += 1
                        elif txn not in others and seq >= resume:
                            self._inconsistent(
                                seq,
                                f"a {TYPE_NAMES[rtype]} for transaction {txn} "
                                "that has no begin record",
                            )
                    elif rtype == BEGIN:
                        txn, session, moment = unpack_begin(buf, body)
                        if moment > stop_us:
                            self._stop_time(seq, moment)
                            break
                        alias = by_name.get(buf[body + begin_size : end])
                        if alias is None:
                            others[txn] = [file_no, base + pos, seq]
                        else:
                            opened[txn] = Txn(txn, session, alias, moment, seq, file_no, base + pos)
                        if seq >= resume:
                            if first_us is None:
                                first_us = moment
                            last_us = moment
                            last = (seq, "begin", txn, session, moment, file_no)
                    elif rtype in (END, ROLLBACK):
                        txn, moment = unpack_end(buf, body)
                        if moment > stop_us:
                            self._stop_time(seq, moment)
                            break
                        if seq >= resume:
                            if first_us is None:
                                first_us = moment
                            last_us = moment
                        t = opened.pop(txn, None)
                        if t is None:
                            self._end_unknown(seq, txn)
                        elif seq >= resume:  # else applied (or settled) before the checkpoint
                            last = (seq, TYPE_NAMES[rtype], txn, t.session, moment, file_no)
                            t.end_seq = seq
                            t.end_us = moment
                            if rtype == ROLLBACK:
                                self._row(t, "rolled_back", None, "rolled back by its program")
                            elif t.keys is None:
                                self._flush()
                                self._apply_spilled(t)
                            else:
                                self.pending.append(t)
                                self.pending_calls += len(t.jsons)
                    elif rtype == TIME:
                        (moment,) = unpack_time(buf, body)
                        if moment > stop_us:
                            self._stop_time(seq, moment)
                            break
                        if seq >= resume:
                            if first_us is None:
                                first_us = moment
                            last_us = moment
                    else:
                        self._record(seq, rtype, buf[body:end])
                    seq += 1
                    pos = end
                    count += 1
            finally:
                st.first_us = first_us
                st.last_us = last_us
                self._last = last
            self.seq = seq
            self.offset = base + pos
            new = count - max(0, min(count, resume - first))
            st.records += new
            self.since_checkpoint += new
            if damage is not None:
                self._damaged(file_no, damage)
                return
            if self.stop is not None:
                return
            finished = eof and pos >= n
            if count or finished:
                yield count
            if finished:
                return

    # -- records -----------------------------------------------------------
    def _record(self, seq: int, rtype: int, payload: bytes) -> None:
        """The rare records (the frequent ones are handled inline in _scan_file)."""
        if rtype == IDENTITY:
            session, user, program, pid = parse_identity(payload)
            self.st.sessions[str(session)] = [user, program, pid]
            self._who[session] = (user, program)
        elif rtype == SWITCH:
            self.switch_to = SWITCH_P.unpack_from(payload)[0]
        elif rtype != CYCLE_START:
            self._inconsistent(seq, f"a record of unknown type {rtype}")

    def _stop_time(self, seq: int, moment: int) -> None:
        """A timed record after stop_at: reading stops before it."""
        assert self.opt.stop_us is not None
        self.stop = Stop(
            "stop_time",
            f"record {seq} is from {iso_us(moment)}, after the stop time "
            f"{iso_us(self.opt.stop_us)}",
        )

    def _end_unknown(self, seq: int, txn: int) -> None:
        """An end or rollback of no open transaction of ours: another database's, or damage."""
        if self.others.pop(txn, None) is not None:
            if seq >= self.resume_seq:
                self.st.other_txns += 1
        elif seq >= self.resume_seq:
            self._inconsistent(seq, f"an end for transaction {txn} that has no begin record")

    def keep_last_record(self) -> None:
        """The last transaction record read, kept in the state (for the abort message)."""
        if self._last is not None:
            seq, kind, txn, session, moment, file_no = self._last
            self.st.last_txn_record = {
                "seq": seq,
                "type": kind,
                "txn": txn,
                "session": session,
                "time_us": moment,
                "file": file_no,
            }

    def _inconsistent(self, seq: int, what: str) -> NoReturn:
        raise MediaError(
            f"{self.logset.rel(self.file_no)}: record {seq} is {what}; the log is inconsistent",
            fix="supply intact log files of this cycle",
        )

    def _damaged(self, file_no: int, damage: Damage) -> None:
        rel = self.logset.rel(file_no)
        what = {
            "checksum": "a checksum error",
            "sequence": "a sequence-number error",
            "truncated": "a truncated record",
            "length": "an impossible record length",
        }[damage.reason]
        message = (
            f"{rel}: {what} at byte {damage.offset} (record {damage.seq}); "
            "treated as the end of the log"
        )
        later = [n for n in self.logset.headers if n > file_no]
        if later:
            message += f" (files {later} of the set are not read)"
        self.st.warnings.append(message)
        self.ctx.warn(message)
        self.stop = Stop("damage", message)

    # -- outcomes ----------------------------------------------------------
    def _flush(self) -> None:
        """Apply the completed transactions gathered so far, in commit order."""
        if not self.pending:
            return
        self._apply_group(self.pending)
        last = self._last_applied()
        if last is not None:
            self.st.last_ok = last
        self.pending = []
        self.pending_calls = 0
        # the rf_recovery rows go with their batch (same transaction): memory holds
        # one batch's rows, not a checkpoint's
        self._write_rows()

    def _remember(self, t: Txn, table: str, key: str, reason: str) -> None:
        """A key written by a suppressed transaction (later failures on it are dependent)."""
        self.suppressed[(t.alias, table, key)] = (t.txn, reason)
        self.st.suppressed_keys.append([t.alias, table, key, t.txn, reason])

    def _who_of(self, session: int) -> tuple[str, str]:
        who = self._who.get(session)
        if who is None:
            user, program, _pid = self.st.sessions.get(str(session), ["?", "?", 0])
            who = self._who[session] = (user, program)
        return who

    def _row(self, t: Txn, status: str, reason: str | None, detail: str | None) -> None:
        user, program = self._who_of(t.session)
        self.rows.setdefault(t.alias, []).append(
            (
                self.logset.logging_id,
                t.txn,
                user,
                program,
                status,
                reason,
                detail,
                t.begin_us,
                t.end_us,
                t.first_seq,
                t.end_seq,
                t.calls if t.keys is None else len(t.jsons),
            )
        )

    def _applied(self, txns: list[Txn]) -> None:
        """The rf_recovery rows of applied transactions: the bulk of them, so they are
        built in one loop and bound without the columns that are constant."""
        who = self._who
        by_alias = self.applied_rows
        for t in txns:
            user, program = who.get(t.session) or self._who_of(t.session)
            rows = by_alias.get(t.alias)
            if rows is None:
                rows = by_alias[t.alias] = []
            rows.append(
                (
                    t.txn,
                    user,
                    program,
                    t.begin_us,
                    t.end_us,
                    t.first_seq,
                    t.end_seq,
                    t.calls if t.keys is None else len(t.jsons),
                )
            )

    def _last_applied(self) -> dict[str, Any] | None:
        best = None
        for alias, rows in self.applied_rows.items():
            if rows:
                txn, _u, _p, _b, end_us, first, end, _c = rows[-1]
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

    def _suppress_open(self) -> None:
        reason = (
            "stop_time"
            if self.stop is not None and self.stop.kind == "stop_time"
            else ("incomplete")
        )
        why = (
            "not completed by the stop time"
            if reason == "stop_time"
            else "no end record before the end of the log"
        )
        for t in sorted(self.open.values(), key=lambda x: x.first_seq):
            self._row(t, "suppressed", reason, why)
        self.open = {}

    def checkpoint(self) -> None:
        """Commit the applied batches with the position to resume from."""
        self._flush()
        self._write_rows()
        starts = [[t.file_no, t.offset, t.first_seq] for t in self.open.values()]
        starts += list(self.others.values())
        self.st.rescan = min(starts, key=lambda s: s[2]) if starts else None
        for alias in self.aliases.values():
            write_flags(self.db, alias, {"rolled_forward_to": self.seq - 1})
        self.since_checkpoint = 0
        self.keep_last_record()
        self.ctx.checkpoint(copy.deepcopy(self.st.as_dict()))


def last_record_info(st: ReplayState) -> dict[str, Any]:
    """The last transaction record read, for the abort message."""
    info = dict(st.last_txn_record or {})
    session = st.sessions.get(str(info.get("session")), ["?", "?", 0])
    info["user"], info["program"], info["pid"] = session
    if "time_us" in info:
        info["time"] = iso_us(int(info["time_us"]))
    return info
