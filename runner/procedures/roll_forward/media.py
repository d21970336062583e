"""The log set's on-disk format: file headers, records, and damage detection.

A log set `<set>` is the files `logs/<set>.<n>.log`, n = 1, 2, ... Each file is
a header followed by records; every file but the last ends with a SWITCH record
naming the next file and carrying the CRC-32 of the file's records, so a file in
the middle of the set can be verified in one fast pass before anything is
applied. Byte layout (all integers little-endian) is documented in
docs/roll_forward.md; keep the two in step.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from runner.errors import MediaError

MAGIC = b"RFLOGSET"
VERSION = 1
HEADER = struct.Struct("<8sHIQQB")  # magic, version, file_no, logging_id, first_seq, name_len
HEADER_CRC = struct.Struct("<I")
RECORD = struct.Struct("<IIQB")  # crc32, payload length, sequence number, type
RECORD_SIZE = RECORD.size  # 17
MAX_PAYLOAD = 1 << 24  # a longer length field can only be damage

# record types
CYCLE_START = 1
IDENTITY = 2
BEGIN = 3
PUT = 4
UPDATE = 5
DELETE = 6
END = 7
TIME = 8
SWITCH = 9
ROLLBACK = 10
CRASH = 11
TYPE_NAMES = {
    CYCLE_START: "cycle-start",
    IDENTITY: "identity",
    BEGIN: "begin",
    PUT: "put",
    UPDATE: "update",
    DELETE: "delete",
    END: "end",
    TIME: "time",
    SWITCH: "switch",
    ROLLBACK: "rollback",
    CRASH: "crash",
}
CALL_TYPES = (PUT, UPDATE, DELETE)

IDENT = struct.Struct("<I")  # session id (then JSON)
BEGIN_P = struct.Struct("<IIq")  # txn, session, time_us (then database name)
CALL_P = struct.Struct("<IH")  # txn, descriptor length (then descriptor, then JSON values)
END_P = struct.Struct("<Iq")  # txn, time_us (END and ROLLBACK)
TIME_P = struct.Struct("<q")
SWITCH_P = struct.Struct("<IIQI")  # next file, records in this file, last seq before, content crc
SWITCH_SIZE = RECORD_SIZE + SWITCH_P.size
CRASH_P = struct.Struct("<qQ")  # restart time_us, seq of the last intact record before it
CRASH_SIZE = RECORD_SIZE + CRASH_P.size


def log_name(set_name: str, file_no: int) -> str:
    """Site-relative path of file `file_no` of a log set."""
    return f"logs/{set_name}.{file_no}.log"


def to_us(moment: datetime) -> int:
    return round(moment.timestamp() * 1_000_000)


def from_us(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1_000_000, tz=UTC)


def iso_us(value: int) -> str:
    return from_us(value).isoformat(timespec="seconds")


def iso_stamp(value: int) -> str:
    """A backup stamp as messages show it: to the microsecond, as rf_flags holds it
    (two stamps a fraction of a second apart must not print alike)."""
    return from_us(value).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class FileHeader:
    file_no: int
    logging_id: int
    first_seq: int
    set_name: str
    size: int  # header length in bytes; records start here


def encode_header(set_name: str, file_no: int, logging_id: int, first_seq: int) -> bytes:
    name = set_name.encode("ascii")
    head = HEADER.pack(MAGIC, VERSION, file_no, logging_id, first_seq, len(name)) + name
    return head + HEADER_CRC.pack(zlib.crc32(head))


def read_header(handle: BinaryIO, rel: str) -> FileHeader:
    """Parse a file header; anything unexpected is a MediaError naming the file."""
    fixed = handle.read(HEADER.size)
    if len(fixed) < HEADER.size:
        raise MediaError(
            f"log file {rel} is too short to be a log file ({len(fixed)} bytes)",
            fix="supply the right file (it may have been truncated by a copy)",
        )
    magic, version, file_no, logging_id, first_seq, name_len = HEADER.unpack(fixed)
    if magic != MAGIC:
        raise MediaError(
            f"{rel} is not a roll-forward log file (bad magic {magic[:8]!r})",
            fix="remove the file from logs/ or supply the right one",
        )
    rest = handle.read(name_len + HEADER_CRC.size)
    if len(rest) < name_len + HEADER_CRC.size:
        raise MediaError(f"log file {rel}: header is truncated", fix="supply an intact copy")
    (crc,) = HEADER_CRC.unpack_from(rest, name_len)
    if zlib.crc32(fixed + rest[:name_len]) != crc:
        raise MediaError(f"log file {rel}: header checksum is wrong", fix="supply an intact copy")
    if version != VERSION:
        raise MediaError(f"log file {rel}: format version {version} is not supported (want 1)")
    try:
        name = rest[:name_len].decode("ascii")
    except UnicodeDecodeError as exc:
        raise MediaError(f"log file {rel}: set name is not ASCII") from exc
    return FileHeader(file_no, logging_id, first_seq, name, HEADER.size + name_len + 4)


def encode_record(seq: int, rtype: int, payload: bytes) -> bytes:
    body = RECORD.pack(0, len(payload), seq, rtype)[4:] + payload
    return struct.pack("<I", zlib.crc32(body)) + body


# -- payloads ----------------------------------------------------------------


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def cycle_payload(logging_id: int, started_us: int, stamps: dict[str, tuple[int, bool]]) -> bytes:
    return _json(
        {
            "logging_id": logging_id,
            "started_us": started_us,
            "databases": {
                name: {"stamp_us": stamp, "by_store": by_store}
                for name, (stamp, by_store) in sorted(stamps.items())
            },
        }
    )


def identity_payload(session: int, user: str, program: str, pid: int) -> bytes:
    return IDENT.pack(session) + _json({"user": user, "program": program, "pid": pid})


def begin_payload(txn: int, session: int, time_us: int, database: str) -> bytes:
    return BEGIN_P.pack(txn, session, time_us) + database.encode("ascii")


def call_payload(txn: int, table: str, columns: list[str], key: Any, values: list[Any]) -> bytes:
    desc = f"{table}({','.join(columns)})".encode("ascii")
    return CALL_P.pack(txn, len(desc)) + desc + _json([key, *values])


def end_payload(txn: int, time_us: int) -> bytes:
    return END_P.pack(txn, time_us)


@dataclass(frozen=True)
class CycleStart:
    logging_id: int
    started_us: int
    stamps: dict[str, tuple[int, bool]]  # database -> (backup stamp, made by store utility)


def parse_cycle(payload: bytes, rel: str) -> CycleStart:
    try:
        data = json.loads(payload)
        stamps = {
            str(name): (int(entry["stamp_us"]), bool(entry["by_store"]))
            for name, entry in data["databases"].items()
        }
        return CycleStart(int(data["logging_id"]), int(data["started_us"]), stamps)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise MediaError(
            f"log file {rel}: the cycle-start record is malformed ({exc})",
            fix="supply an intact first file of the log set",
        ) from exc


def parse_identity(payload: bytes) -> tuple[int, str, str, int]:
    (session,) = IDENT.unpack_from(payload)
    data = json.loads(payload[IDENT.size :])
    return session, str(data["user"]), str(data["program"]), int(data.get("pid", 0))


def parse_desc(desc: bytes) -> tuple[str, list[str]]:
    """`table(col,col)` -> (table, [cols]); ValueError if malformed."""
    text = desc.decode("ascii")
    table, sep, rest = text.partition("(")
    if not sep or not rest.endswith(")") or not table:
        raise ValueError(f"bad call descriptor {text!r}")
    inner = rest[:-1]
    return table, (inner.split(",") if inner else [])


# -- reading -----------------------------------------------------------------


@dataclass
class Damage:
    """Where and why a file's records stop being trustworthy."""

    offset: int
    seq: int
    reason: str  # "checksum", "sequence", "truncated", "length"


@dataclass
class Chunk:
    """Records parsed from one read; `records` holds (seq, type, payload, offset)."""

    file_no: int
    records: list[tuple[int, int, bytes, int]]
    end_offset: int  # offset just after the last record in `records`
    damage: Damage | None = None
    eof: bool = False


def iter_chunks(
    handle: BinaryIO,
    file_no: int,
    offset: int,
    expect_seq: int,
    *,
    verify: bool = True,
    chunk_bytes: int = 1 << 20,
    max_records: int = 4096,
) -> Iterator[Chunk]:
    """Stream a file's records from `offset`, checking sequence and (if verify) CRC.

    Stops at the first damaged record (yielding its Damage) or at end of file.
    Memory is one read buffer, whatever the file size.
    """
    handle.seek(offset)
    buf = b""
    pos = 0
    base = offset  # file offset of buf[0]
    seq = expect_seq
    unpack = RECORD.unpack_from
    crc32 = zlib.crc32
    eof = False
    need = 0  # bytes the next record still lacks
    while True:
        if not eof and (need or len(buf) - pos < chunk_bytes):
            more = handle.read(max(chunk_bytes, need))
            if more:
                buf = buf[pos:] + more
                base += pos
                pos = 0
            else:
                eof = True
        need = 0
        records: list[tuple[int, int, bytes, int]] = []
        append = records.append
        n = len(buf)
        damage = None
        while len(records) < max_records:
            if n - pos < RECORD_SIZE:
                if n > pos:
                    if eof:
                        damage = Damage(base + pos, seq, "truncated")
                    else:
                        need = RECORD_SIZE
                break
            crc, length, rseq, rtype = unpack(buf, pos)
            if length > MAX_PAYLOAD:
                damage = Damage(base + pos, seq, "length")
                break
            end = pos + RECORD_SIZE + length
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
            append((rseq, rtype, buf[pos + RECORD_SIZE : end], base + pos))
            seq += 1
            pos = end
        finished = damage is not None or (eof and pos >= n)
        if records or finished:
            yield Chunk(file_no, records, base + pos, damage, eof=finished)
        if finished:
            return


def verify_closed_file(
    handle: BinaryIO, rel: str, header: FileHeader, size: int
) -> tuple[int, int]:
    """Check a file that the log continued after: its SWITCH trailer and content CRC.

    Returns (next file number, seq of the switch record). A file in the middle of
    the set that fails here is damaged media, refused before anything is applied.
    """
    fix = f"supply an intact copy of {rel}"
    content = size - header.size - SWITCH_SIZE
    if content < 0:
        raise MediaError(
            f"log file {rel} ends without a switch record although the set continues", fix=fix
        )
    handle.seek(header.size + content)
    tail = handle.read(SWITCH_SIZE)
    crc, length, seq, rtype = RECORD.unpack_from(tail)
    if rtype != SWITCH or length != SWITCH_P.size or zlib.crc32(tail[4:]) != crc:
        raise MediaError(
            f"log file {rel} is damaged: it does not end with an intact switch record, "
            "but later files of the set exist",
            fix=fix + ", or move the later files away to recover only up to the damage",
        )
    next_file, count, _last, content_crc = SWITCH_P.unpack_from(tail, RECORD_SIZE)
    handle.seek(header.size)
    running = 0
    left = content
    while left > 0:
        block = handle.read(min(left, 1 << 22))
        if not block:
            raise MediaError(f"log file {rel} shrank while being read", fix=fix)
        running = zlib.crc32(block, running)
        left -= len(block)
    if running != content_crc:
        raise MediaError(
            f"log file {rel} is damaged: its records do not match the checksum in its "
            "switch record, and later files of the set exist",
            fix=fix + ", or move the later files away to recover only up to the damage",
        )
    if seq != header.first_seq + count:
        raise MediaError(f"log file {rel}: switch record numbering is inconsistent", fix=fix)
    if next_file != header.file_no + 1:
        raise MediaError(
            f"log file {rel} switches to file {next_file}, expected {header.file_no + 1}",
            fix=fix,
        )
    return next_file, seq


@dataclass(frozen=True)
class CrashRecord:
    """The record the system's restart after a failure appends to the newest file."""

    time_us: int  # when the restart ran
    last_seq: int  # the last intact record the restart found
    offset: int  # where it starts in the file: the records before it end here


def read_crash_trailer(handle: BinaryIO, header: FileHeader, size: int) -> CrashRecord | None:
    """The crash record ending the newest file, or None when the restart wrote none.

    It is a fixed-size trailer, found from the end of the file (like the switch
    record of a closed file), so a torn or garbled tail the crash left in front of
    it does not hide it; the records are read only up to its offset.
    """
    offset = size - CRASH_SIZE
    if offset < header.size:
        return None
    handle.seek(offset)
    tail = handle.read(CRASH_SIZE)
    if len(tail) != CRASH_SIZE:
        return None
    crc, length, _seq, rtype = RECORD.unpack_from(tail)
    if rtype != CRASH or length != CRASH_P.size or zlib.crc32(tail[4:]) != crc:
        return None
    time_us, last_seq = CRASH_P.unpack_from(tail, RECORD_SIZE)
    return CrashRecord(time_us, last_seq, offset)


# -- writing -----------------------------------------------------------------


class LogSetWriter:
    """Writes a log set the way a logging database would (used by the world and tests).

    Switches to the next file when the current one passes `file_bytes`.
    """

    def __init__(self, directory: Path, set_name: str, logging_id: int, file_bytes: int) -> None:
        self.directory = directory
        self.set_name = set_name
        self.logging_id = logging_id
        self.file_bytes = file_bytes
        self.file_no = 0
        self.seq = 1
        self.records = 0  # records in the current file
        self.handle: BinaryIO | None = None
        self.crc = 0
        self.paths: list[Path] = []
        self._open_next()

    def _open_next(self) -> None:
        self.file_no += 1
        path = self.directory / Path(log_name(self.set_name, self.file_no)).name
        self.directory.mkdir(parents=True, exist_ok=True)
        self.handle = open(path, "wb")  # noqa: SIM115 - closed in switch/close
        self.handle.write(encode_header(self.set_name, self.file_no, self.logging_id, self.seq))
        self.paths.append(path)
        self.records = 0
        self.crc = 0

    def write(self, rtype: int, payload: bytes) -> int:
        """Append one record; returns its sequence number."""
        assert self.handle is not None
        data = encode_record(self.seq, rtype, payload)
        self.handle.write(data)
        self.crc = zlib.crc32(data, self.crc)
        self.records += 1
        self.seq += 1
        if self.handle.tell() >= self.file_bytes:
            self.switch()
        return self.seq - 1

    def switch(self) -> None:
        assert self.handle is not None
        payload = SWITCH_P.pack(self.file_no + 1, self.records, self.seq - 1, self.crc)
        self.handle.write(encode_record(self.seq, SWITCH, payload))
        self.seq += 1
        self.handle.close()
        self._open_next()

    def crash(self, time_us: int, last_seq: int) -> None:
        """The restart's crash record, after whatever the crash left (a torn tail)."""
        assert self.handle is not None
        payload = CRASH_P.pack(time_us, last_seq)
        self.handle.write(encode_record(last_seq + 1, CRASH, payload))

    def raw(self, data: bytes) -> None:
        """Append raw bytes (a torn or garbled tail, for crash scenarios)."""
        assert self.handle is not None
        self.handle.write(data)

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None
