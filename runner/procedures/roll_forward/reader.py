"""The reading half of a roll forward: the log framed, checked and turned into batches.

LogReader walks the log set in log order, keeps the transactions still open,
and hands out messages: each batch of completed transactions (commit order)
already parsed and grouped into the executemany calls that apply it, the rows
of transactions rolled back or left incomplete, warnings, checkpoints carrying
the position to resume from, and the end. It needs no database, so on a
machine with two cores `read_ahead` runs it in a forked child that reads and
decodes the next batch while this process applies the last one; otherwise its
messages are taken in-process. Either way the applying side sees the same
messages in the same order (replay.py).
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import gc
import marshal
import os
import signal
import struct
import traceback
import zlib
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, NoReturn

from runner.errors import MediaError
from runner.procedures.roll_forward.batches import (
    PLAN_ERRORS,
    CallPlanner,
    Open,
    Txn,
    recovery_row,
)
from runner.procedures.roll_forward.catalog import StatementCache
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
#: ReplayState fields the reader owns; the applying side owns the others.
READER_FIELDS = (
    "pos",
    "rescan",
    "sessions",
    "records",
    "files_read",
    "first_us",
    "last_us",
    "last_txn_record",
    "other_txns",
    "warnings",
    "stop",
)
FRAME = struct.Struct("<Q")  # the length of each marshalled message on the pipe
PIPE_BYTES = 1 << 20
OPEN_CALLS_SENT = 1000  # an open transaction with more calls is sent as its position

# A message is a tuple whose first item says what it is (all plain data, so it
# crosses the pipe with marshal):
#   ("progress", records, file_no, offset)   a chunk of records was read, up to there
#   ("batch", plan, metas, start, rows, opens, upto) completed transactions:
#       plan [(statement key, [params...]), ...] in execution order, or None when
#       they must be applied one by one; metas one Meta per transaction; start
#       the Position of the earliest BEGIN among them and upto the next record
#       (to read their calls again if the batch fails); rows rf_recovery rows of
#       rolled-back transactions {alias: [row, ...]}; opens the still-open
#       transactions (Open), for telling a failure that depends on one
#   ("spilled", meta, position, opens, upto) one transaction too big to buffer
#   ("warn", text)
#   ("checkpoint", fields, seq)              commit here; fields = READER_FIELDS
#   ("end", (kind, detail, needed_file), fields, rows)
#   ("error", message, fix, fields)          a MediaError; nothing after it
Message = tuple[Any, ...]


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
    # From an online backup: the quiesce point replay starts after (0 = from the
    # cycle start). Transactions of other databases may then end or call without
    # their begin, which lies in files not read.
    starts_after: int = 0

    def as_dict(self) -> dict[str, Any]:
        # targets as pairs: the journal may sort keys, and report order must not change
        return {"v": STATE_VERSION, **self.__dict__, "targets": list(self.targets.items())}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReplayState:
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        fields["targets"] = {name: alias for name, alias in fields["targets"]}
        return cls(**fields)

    def merge(self, fields: dict[str, Any]) -> None:
        """Take over what the reader reports (its READER_FIELDS)."""
        for name, value in fields.items():
            setattr(self, name, value)


class LogReader:
    """Reads one roll forward's log set for the target databases; see messages()."""

    def __init__(
        self,
        logset: LogSet,
        paths: dict[int, str],
        state: ReplayState,
        options: Options,
        stmts: StatementCache,
    ) -> None:
        self.logset = logset
        self.paths = paths  # file number -> path of each present file of the set
        self.st = ReplayState.from_dict(copy.deepcopy(state.as_dict()))  # its own copy
        self.opt = options
        self.aliases = self.st.targets  # database name -> alias
        self.planner = CallPlanner(stmts)
        self.open: dict[int, Txn] = {}
        self.others: dict[int, list[Any]] = {}  # other databases' open txns -> begin position
        self.pending: list[Txn] = []
        self.pending_calls = 0
        self.rows: dict[str, list[tuple[Any, ...]]] = {}  # rolled back or incomplete
        self.outbox: list[Message] = []
        self.resume_seq = int(self.st.pos[2])
        self.seq = self.resume_seq
        self.switch_to: int | None = None
        self.stop: Stop | None = None
        self.since_checkpoint = 0
        self.file_no = int(self.st.pos[0])
        self.offset = int(self.st.pos[1])
        self._who: dict[int, tuple[str, str]] = {}
        self._last: tuple[Any, ...] | None = None

    def bytes_to_read(self) -> int:
        """The size of the files from the resume point on (to choose read_ahead); a
        file that cannot be looked at counts nothing (reading it will say why)."""
        start = int((self.st.rescan or self.st.pos)[0])
        total = 0
        for number, path in self.paths.items():
            if number >= start:
                with contextlib.suppress(OSError):
                    total += os.path.getsize(path)
        return total

    # -- the main loop -----------------------------------------------------
    def messages(self) -> Generator[Message, None, None]:
        """Everything the applying side must do, in order; ends with "end" or "error"."""
        try:
            yield from self._messages()
        except MediaError as exc:
            self.keep_last_record()
            yield from self._drain()
            yield ("error", exc.message, exc.fix, self._fields())

    def _messages(self) -> Iterator[Message]:
        st = self.st
        for count in self._scan(st.rescan or st.pos):
            if self.stop is not None:
                break
            if self.switch_to is not None:
                st.pos = [self.switch_to, 0, self.seq]
            else:
                st.pos = [self.file_no, self.offset, self.seq]
            if self.pending_calls >= self.opt.flush_calls:
                self._flush(self.seq)
            if self.since_checkpoint >= self.opt.checkpoint_records:
                self._checkpoint()
            yield from self._drain()
            yield ("progress", count, st.pos[0], st.pos[1])
        if self.stop is None:
            self.stop = Stop("end", "the log ends cleanly")
        self._flush(self.seq)
        stop = (self.stop.kind, self.stop.detail, self.stop.needed_file)
        if self.stop.kind == "missing_file":
            self._checkpoint()
            yield from self._drain()
            yield ("end", stop, self._fields(), {})
            return
        st.pos = [self.file_no, 0, self.seq]  # finished: only the record count matters
        self._suppress_open()
        self.keep_last_record()
        st.stop = {"kind": self.stop.kind, "detail": self.stop.detail}
        yield from self._drain()
        yield ("end", stop, self._fields(), self.rows)

    def _drain(self) -> Iterator[Message]:
        while self.outbox:
            yield self.outbox.pop(0)

    def _fields(self) -> dict[str, Any]:
        return copy.deepcopy({name: getattr(self.st, name) for name in READER_FIELDS})

    def _open(self, file_no: int, rel: str) -> BinaryIO:
        """The file's bytes; the newest file's only up to the restart's crash record
        (the records end there: a tail the crash left in front of it is damage)."""
        crash = self.logset.crash
        try:
            handle = open(self.paths[file_no], "rb")  # noqa: SIM115 - the caller closes it
            if crash is not None and file_no == self.logset.last_file:
                return _Bounded(handle, crash.offset)  # type: ignore[return-value]
            return handle
        except FileNotFoundError as exc:
            raise MediaError(f"media file {rel} is missing") from exc
        except OSError as exc:
            raise MediaError(f"media file {rel} cannot be read: {exc.strerror}") from exc

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
            with self._open(file_no, rel) as handle:
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
        midway = st.starts_after > 0
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
                        elif txn not in others and seq >= resume and not midway:
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
                                self._flush(seq)
                                meta = self._who_of(t).meta()
                                where = (t.file_no, t.offset, t.first_seq)
                                opens = self._opens()
                                self.outbox.append(("spilled", meta, where, opens, seq))
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
        elif seq >= self.resume_seq and not self.st.starts_after:
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
        self.outbox.append(("warn", message))
        self.stop = Stop("damage", message)

    # -- outcomes ----------------------------------------------------------
    def _flush(self, upto: int) -> None:
        """Hand out the completed transactions gathered so far, parsed and grouped."""
        if not self.pending and not any(self.rows.values()):
            return
        txns = self.pending
        plan = None
        if txns:
            try:
                plan = self.planner.plan(txns)
            except PLAN_ERRORS:
                plan = None  # the applying side reads them again and finds the culprit
        metas = [self._who_of(t).meta() for t in txns]
        first = min(txns, key=lambda t: t.first_seq) if txns else None
        start = (first.file_no, first.offset, first.first_seq) if first else (0, 0, upto)
        self.outbox.append(("batch", plan, metas, start, self.rows, self._opens(), upto))
        self.pending = []
        self.pending_calls = 0
        self.rows = {}

    def _opens(self) -> list[Open]:
        """The open transactions (unless spilled), as a failing call may depend on one
        of them: with their calls so far, or for a long one only where it begins
        (read again from there if ever needed), so what crosses with each batch
        stays small."""
        return [
            (t.txn, t.alias, t.first_seq, list(t.keys), list(t.jsons), 0, 0)
            if len(t.keys) <= OPEN_CALLS_SENT
            else (t.txn, t.alias, t.first_seq, None, None, t.file_no, t.offset)
            for t in self.open.values()
            if t.keys is not None
        ]

    def _who_of(self, t: Txn) -> Txn:
        """Fill in the transaction's user and program from its session's identity."""
        who = self._who.get(t.session)
        if who is None:
            user, program, _pid = self.st.sessions.get(str(t.session), ["?", "?", 0])
            who = self._who[t.session] = (user, program)
        t.user, t.program = who
        return t

    def _row(self, t: Txn, status: str, reason: str | None, detail: str | None) -> None:
        row = recovery_row(self._who_of(t), self.logset.logging_id, status, reason, detail)
        self.rows.setdefault(t.alias, []).append(row)

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

    def _checkpoint(self) -> None:
        """Everything so far handed out, then the position a resumed run starts from."""
        self._flush(self.seq)
        starts = [[t.file_no, t.offset, t.first_seq] for t in self.open.values()]
        starts += list(self.others.values())
        self.st.rescan = min(starts, key=lambda s: s[2]) if starts else None
        self.since_checkpoint = 0
        self.keep_last_record()
        self.outbox.append(("checkpoint", self._fields(), self.seq))


class _Bounded:
    """A file read only up to `end` (what the reader's framing needs of a file)."""

    def __init__(self, handle: BinaryIO, end: int) -> None:
        self.handle = handle
        self.end = end

    def seek(self, offset: int) -> int:
        return self.handle.seek(offset)

    def read(self, size: int = -1) -> bytes:
        left = max(0, self.end - self.handle.tell())
        return self.handle.read(left if size < 0 else min(size, left))

    def __enter__(self) -> _Bounded:
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.close()


def last_record_info(st: ReplayState) -> dict[str, Any]:
    """The last transaction record read, for the abort message."""
    info = dict(st.last_txn_record or {})
    session = st.sessions.get(str(info.get("session")), ["?", "?", 0])
    info["user"], info["program"], info["pid"] = session
    if "time_us" in info:
        info["time"] = iso_us(int(info["time_us"]))
    return info


# -- reading ahead in a second process ------------------------------------------
def read_ahead(reader: LogReader) -> Generator[Message, None, None]:
    """reader.messages(), produced by a forked child while the caller works.

    The child only reads files and writes the pipe: it closes every descriptor
    it inherited (the site lock and the databases stay the parent's alone), never
    touches SQLite, and ends with os._exit. The pipe holds about one batch, so the
    child runs at most a batch or two ahead and memory stays flat. Closing this
    generator (or the parent dying, which breaks the pipe) stops the child;
    Ctrl-C and kill are the parent's to handle: they are blocked around the fork,
    so neither process can be interrupted half made.
    """
    rfd, wfd = os.pipe()
    _grow_pipe(wfd)
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child's coverage is not collected
            try:
                _child(reader, wfd, blocked)
            finally:
                os._exit(1)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        os.close(wfd)
    try:
        with open(rfd, "rb", buffering=PIPE_BYTES) as pipe:
            while True:
                head = pipe.read(FRAME.size)
                size = FRAME.unpack(head)[0] if len(head) == FRAME.size else -1
                body = pipe.read(size) if size > 0 else b""
                if size <= 0 or len(body) < size:  # the child died, maybe mid-message
                    raise MediaError(
                        "the log reader process ended unexpectedly",
                        fix="run again: it continues from the last checkpoint",
                    )
                message = marshal.loads(body)
                if message[0] == "crash":
                    raise RuntimeError(f"the log reader process failed:\n{message[1]}")
                yield message
                if message[0] in ("end", "error"):
                    return
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def _grow_pipe(fd: int) -> None:
    """A pipe that holds a whole batch (Linux; elsewhere the default is fine)."""
    setpipe = getattr(fcntl, "F_SETPIPE_SZ", None)
    if setpipe is not None:
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, setpipe, PIPE_BYTES)


def _child(reader: LogReader, wfd: int, blocked: Iterable[int]) -> NoReturn:
    """The reader process: its messages, marshalled, into the pipe; then exit."""
    code = 0
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        os.closerange(3, wfd)  # the parent's files: its lock, its databases, its pipe end
        os.closerange(wfd + 1, os.sysconf("SC_OPEN_MAX"))
        gc.freeze()  # the parent's objects stay shared, not copied by collections
        with open(wfd, "wb", buffering=PIPE_BYTES) as pipe:
            try:
                for message in reader.messages():
                    _send(pipe, message)
            except BrokenPipeError:
                raise
            except BaseException:
                _send(pipe, ("crash", traceback.format_exc()))
                code = 1
    except BaseException:
        code = 1  # the parent is gone (broken pipe) or the pipe failed: nothing to tell
    os._exit(code)


def _send(pipe: BinaryIO, message: Message) -> None:
    data = marshal.dumps(message)
    pipe.write(FRAME.pack(len(data)))
    pipe.write(data)
    pipe.flush()
