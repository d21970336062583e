"""The emulated tape: one file per tape, in a documented binary format.

All integers are big-endian; every structure carries a CRC-32 so a torn or
damaged record is detected where it is read (docs/case_archive.md):

    header   "RCTAPE01" | u16 label length | label (UTF-8) | u64 capacity | u32 crc
    session  "SESS" | u32 backup id | u32 file count | u32 crc          (16 bytes)
    record   "FREC" | u16 path length | u64 size | sha256 (32 bytes) | path | data
             | u32 crc over everything after the marker
    end      "SEND" | u32 backup id | u32 file count | u32 crc          (16 bytes)

A tape is its header followed by complete backup sessions. Appending a session
rewrites the tape file atomically (the emulated drive has no partial append),
copying exactly the bytes the catalog says are committed, so a write torn by a
crash is replaced, never appended to.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from runner.errors import MediaError

MAGIC = b"RCTAPE01"
SESSION, RECORD, END = b"SESS", b"FREC", b"SEND"
CHUNK = 1 << 16
_HEAD = struct.Struct(">H")
_CAP = struct.Struct(">QI")
_MARK = struct.Struct(">4sIII")  # session / end: marker, backup id, count, crc
_REC = struct.Struct(">4sHQ32s")  # record head: marker, path length, size, digest
_CRC = struct.Struct(">I")
RECORD_OVERHEAD = _REC.size + _CRC.size
MARK_SIZE = _MARK.size


class TapeError(MediaError):
    """The tape file is truncated, damaged, or not a tape."""


class CorruptRecord(TapeError):
    """One file record fails its checks; the rest of the tape may still be good."""


@dataclass(frozen=True)
class RecordInfo:
    offset: int
    relpath: str
    size: int
    digest: str
    problem: str | None  # None: the record's CRC and digest hold


#: A tape whose header is unreadable cannot be loaded, so re-initialising it is no
#: way out: the only fix is the sound tape file.
_PUT_BACK = "put the right tape back in the library (restore its file from a sound copy)"


def header_bytes(label: str, capacity: int) -> bytes:
    name = label.encode()
    head = MAGIC + _HEAD.pack(len(name)) + name + struct.pack(">Q", capacity)
    return head + _CRC.pack(zlib.crc32(head))


def read_header(handle: BinaryIO, where: str = "tape") -> tuple[str, int, int]:
    """(label, capacity, header length); TapeError if this is not a sound tape."""
    first = handle.read(len(MAGIC) + _HEAD.size)
    if len(first) < len(MAGIC) + _HEAD.size or first[: len(MAGIC)] != MAGIC:
        raise TapeError(
            f"{where} has no tape header (not a tape, or torn)",
            fix=_PUT_BACK,
        )
    (length,) = _HEAD.unpack(first[len(MAGIC) :])
    rest = handle.read(length + _CAP.size)
    if len(rest) < length + _CAP.size:
        raise TapeError(f"{where}: tape header is truncated", fix=_PUT_BACK)
    name, (capacity, crc) = rest[:length], _CAP.unpack(rest[length:])
    if zlib.crc32(first + name + rest[length : length + 8]) != crc:
        raise TapeError(f"{where}: tape header fails its checksum", fix=_PUT_BACK)
    try:
        label = name.decode()
    except UnicodeDecodeError:
        raise TapeError(f"{where}: tape label is not UTF-8", fix=_PUT_BACK) from None
    return label, capacity, len(first) + len(rest)


def record_size(relpath: str, size: int) -> int:
    return RECORD_OVERHEAD + len(relpath.encode()) + size


def session_size(records: Iterator[tuple[str, int]]) -> int:
    """Exact bytes a backup session of these (relpath, size) records takes."""
    return 2 * MARK_SIZE + sum(record_size(p, s) for p, s in records)


def _mark(kind: bytes, backup_id: int, count: int) -> bytes:
    body = struct.pack(">II", backup_id, count)
    return struct.pack(">4s", kind) + body + _CRC.pack(zlib.crc32(kind + body))


class SessionWriter:
    """Writes one backup session to `out`, which is at tape offset `start`."""

    def __init__(self, out: BinaryIO, start: int, backup_id: int, count: int) -> None:
        self.out, self.position = out, start
        self.backup_id, self.count, self.written = backup_id, count, 0
        self._put(_mark(SESSION, backup_id, count))

    def _put(self, data: bytes) -> None:
        self.out.write(data)
        self.position += len(data)

    def add(self, relpath: str, size: int, digest: str, source: BinaryIO, where: str) -> int:
        """Stream one file into a record; returns the record's offset.

        The source is checked against the catalog's size and digest while it is
        copied: a damaged cache file must not become a sound-looking record.
        """
        offset = self.position
        name = relpath.encode()
        head = _REC.pack(RECORD, len(name), size, bytes.fromhex(digest)) + name
        crc = zlib.crc32(head[4:])
        self._put(head)
        sha, seen = hashlib.sha256(), 0
        while chunk := source.read(CHUNK):
            seen += len(chunk)
            if seen > size:
                break
            sha.update(chunk)
            crc = zlib.crc32(chunk, crc)
            self._put(chunk)
        if seen != size or sha.hexdigest() != digest:
            raise CorruptRecord(
                f"{where} does not match the catalog (size or digest); nothing was written",
                fix="store the file again from the ingest disk, or remove it from the catalog",
            )
        self._put(_CRC.pack(crc))
        self.written += 1
        return offset

    def finish(self) -> None:
        if self.written != self.count:
            raise TapeError(f"session {self.backup_id}: {self.written} of {self.count} written")
        self._put(_mark(END, self.backup_id, self.count))


def _exact(handle: BinaryIO, n: int, where: str, offset: int) -> bytes:
    data = handle.read(n)
    if len(data) != n:
        raise TapeError(f"{where} is truncated at offset {offset + len(data)} (torn record)")
    return data


def read_record(
    handle: BinaryIO, offset: int, where: str, out: BinaryIO | None = None
) -> RecordInfo:
    """Read (and stream to `out`) the record at `offset`, checking CRC and digest.

    Raises CorruptRecord if the record is torn or damaged: a caller writing
    `out` atomically then drops the partial copy.
    """
    handle.seek(offset)
    try:
        marker, length, size, digest = _REC.unpack(_exact(handle, _REC.size, where, offset))
    except TapeError as exc:
        raise CorruptRecord(exc.message) from None
    if marker != RECORD:
        raise CorruptRecord(f"{where}: no file record at offset {offset}")
    name = handle.read(length)
    crc = zlib.crc32(_REC.pack(RECORD, length, size, digest)[4:] + name)
    sha, left = hashlib.sha256(), size
    while left:
        chunk = handle.read(min(CHUNK, left))
        if not chunk:
            raise CorruptRecord(f"{where}: record at offset {offset} is torn (truncated data)")
        left -= len(chunk)
        sha.update(chunk)
        crc = zlib.crc32(chunk, crc)
        if out is not None:
            out.write(chunk)
    tail = handle.read(_CRC.size)
    try:
        relpath = name.decode()
    except UnicodeDecodeError:
        relpath = repr(name)
    problem = None
    if len(tail) != _CRC.size or len(name) != length:
        problem = "torn (truncated)"
    elif _CRC.unpack(tail)[0] != crc:
        problem = "checksum mismatch"
    elif sha.digest() != digest:
        problem = "digest mismatch"
    if problem:
        raise CorruptRecord(f"{where}: record {relpath} at offset {offset}: {problem}")
    return RecordInfo(offset, relpath, size, digest.hex(), None)


def scan(handle: BinaryIO, where: str = "tape") -> Iterator[tuple[int, RecordInfo]]:
    """Every record of a tape as (backup id, record), damaged ones with a problem.

    Raises TapeError where the framing itself is lost (a torn session, a
    damaged length field): nothing after that point can be trusted.
    """
    _label, _capacity, offset = read_header(handle, where)
    end = handle.seek(0, 2)
    while True:
        handle.seek(offset)
        head = handle.read(MARK_SIZE)
        if not head:
            return
        if len(head) < MARK_SIZE:
            raise TapeError(f"{where} is truncated at offset {offset} (torn session)")
        kind, backup_id, count, crc = _MARK.unpack(head)
        if kind != SESSION or zlib.crc32(head[:12]) != crc:
            raise TapeError(f"{where}: no sound session header at offset {offset}")
        offset += MARK_SIZE
        for _ in range(count):
            try:
                info = read_record(handle, offset, where)
            except CorruptRecord as exc:
                handle.seek(offset)
                raw = handle.read(_REC.size)
                if len(raw) < _REC.size:
                    raise TapeError(exc.message) from None
                _m, length, size, digest = _REC.unpack(raw)
                info = RecordInfo(offset, "?", size, digest.hex(), exc.message)
                nxt = offset + record_size("", size) + length
                if nxt + 4 > end:
                    raise TapeError(
                        f"{where}: framing lost at the damaged record at {offset}"
                    ) from None
                handle.seek(nxt)
                if handle.read(4) not in (RECORD, END):
                    raise TapeError(
                        f"{where}: framing lost after the damaged record at {offset}"
                    ) from None
            yield backup_id, info
            offset += record_size("", info.size) + (
                len(info.relpath.encode()) if info.problem is None else length
            )
        handle.seek(offset)
        tail = _exact(handle, MARK_SIZE, where, offset)
        if tail != _mark(END, backup_id, count):
            raise TapeError(f"{where}: session {backup_id} has no sound end mark at {offset}")
        offset += MARK_SIZE
