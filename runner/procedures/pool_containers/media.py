"""The container file format of the emulated storage pools (docs/pool_containers.md).

A container holds one or more versions of one element, written by the
element's type manager:

- ``whole_copy``: exactly one version, stored as is;
- ``delta``: any number of versions in one container (emulated: each version is
  stored whole, the type code is what differs);
- ``compressed``: any number of versions, each zlib-compressed.

Layout (big-endian)::

    fixed header, 40 bytes
      0   8  magic b"RPOOLCT1"
      8   1  format version (1)
      9   1  type manager code (1 whole_copy, 2 delta, 3 compressed)
     10   2  reserved, zero
     12  16  element oid (16 raw bytes; 32 hex digits in the catalog)
     28   4  version count n
     32   8  data section length D
    version table, n entries in ascending (branch, number) order
      u16 L, L bytes branch name (UTF-8, starts with "/")
      u32 version number
      u64 offset of the stored data in the data section
      u64 stored length
      u64 raw (cleartext) length
      32  SHA-256 of the raw data
    u32 CRC-32 of the fixed header and the table
    data section, D bytes

Damage is told apart in two kinds: structural damage (bad magic, header CRC,
truncation, trailing bytes, impossible table) makes the container unusable and
raises `MediaError`; a version whose data no longer matches its digest is
*corrupt*, which `read_version` reports with `CorruptVersion` so callers can
skip that version and report it.
"""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import BinaryIO, NamedTuple, overload

from runner.errors import MediaError

MAGIC = b"RPOOLCT1"
FORMAT_VERSION = 1
TYPE_MANAGERS = ("whole_copy", "delta", "compressed")
TM_CODES = {name: code for code, name in enumerate(TYPE_MANAGERS, start=1)}
TM_EXTENSIONS = {"whole_copy": "wc", "delta": "dlt", "compressed": "cmp"}

_FIXED = struct.Struct(">8sBBH16sIQ")
_ENTRY = struct.Struct(">IQQQ32s")
_U16 = struct.Struct(">H")
_CRC = struct.Struct(">I")
_WHOLE_COPY, _COMPRESSED = 1, 3  # type manager codes
MAX_VERSIONS = 1_000_000
MAX_BRANCH = 1024
_FIRST_READ = 1 << 16
_FIX_HINT = (
    "move the damaged file out of the pool (for example into the pool's lost+found) "
    "or restore it from a backup, then run the step again"
)

VersionKey = tuple[str, int]


class CorruptVersion(MediaError):
    """A version's stored data does not match its digest (or does not decompress)."""


class VersionEntry(NamedTuple):
    """One row of the version table (a tuple: headers are parsed by the hundred thousand)."""

    branch: str
    number: int
    offset: int
    stored: int
    raw: int
    digest: bytes

    @property
    def key(self) -> VersionKey:
        return (self.branch, self.number)


@dataclass(frozen=True)
class Header:
    """A parsed header; `data_start` is the file offset of the data section."""

    oid: str
    type_manager: str
    entries: tuple[VersionEntry, ...]
    data_start: int
    data_len: int

    def held(self) -> frozenset[VersionKey]:
        return frozenset(e.key for e in self.entries)

    def entry(self, key: VersionKey) -> VersionEntry | None:
        for item in self.entries:
            if item.key == key:
                return item
        return None


@dataclass(frozen=True)
class Part:
    """One version to write: its lengths and digest up front, its stored bytes on demand.

    Knowing the lengths first lets the writer put the table before the data
    and hold only one version in memory at a time.
    """

    branch: str
    number: int
    stored_len: int
    raw_len: int
    digest: bytes
    load: Callable[[], bytes]


def oid_bytes(oid: str) -> bytes:
    try:
        raw = bytes.fromhex(oid)
    except ValueError:
        raw = b""
    if len(raw) != 16:
        raise MediaError(f"element oid {oid!r} is not 32 hex digits")
    return raw


def store(type_manager: str, raw: bytes) -> bytes:
    """The stored form of raw version data for a type manager."""
    return zlib.compress(raw, 6) if type_manager == "compressed" else raw


@overload
def unstore(type_manager: str, stored: bytes, raw_len: int) -> bytes: ...
@overload
def unstore(type_manager: str, stored: memoryview, raw_len: int) -> bytes | memoryview: ...
def unstore(type_manager: str, stored: bytes | memoryview, raw_len: int) -> bytes | memoryview:
    """Raw data from its stored form; CorruptVersion when it cannot be."""
    if type_manager != "compressed":
        return stored
    try:
        out = zlib.decompressobj()
        raw = out.decompress(stored, raw_len + 1)
    except zlib.error as exc:
        raise CorruptVersion(f"compressed data does not inflate: {exc}") from exc
    if not out.eof or out.unused_data:
        raise CorruptVersion("compressed data has the wrong length")
    return raw


def part_from_raw(type_manager: str, branch: str, number: int, raw: bytes) -> Part:
    stored = store(type_manager, raw)
    return Part(branch, number, len(stored), len(raw), hashlib.sha256(raw).digest(), lambda: stored)


def encode(oid: str, type_manager: str, versions: Iterable[tuple[str, int, bytes]]) -> bytes:
    """A whole container in memory (for small containers: the world generator, tests)."""
    parts = [part_from_raw(type_manager, b, n, raw) for b, n, raw in versions]
    chunks: list[bytes] = []
    _write(chunks.append, oid, type_manager, parts)
    return b"".join(chunks)


def write(handle: BinaryIO, oid: str, type_manager: str, parts: Sequence[Part]) -> None:
    """Stream a container to `handle` (one version's data in memory at a time)."""
    _write(handle.write, oid, type_manager, parts)


def _write(
    emit: Callable[[bytes], object], oid: str, type_manager: str, parts: Sequence[Part]
) -> None:
    if type_manager not in TM_CODES:
        raise MediaError(f"unknown type manager {type_manager!r}")
    ordered = sorted(parts, key=lambda p: (p.branch, p.number))
    keys = [(p.branch, p.number) for p in ordered]
    if len(set(keys)) != len(keys):
        raise MediaError("a container cannot hold the same version twice")
    if type_manager == "whole_copy" and len(ordered) != 1:
        raise MediaError("a whole-copy container holds exactly one version")
    if not ordered:
        raise MediaError("a container holds at least one version")
    table = bytearray()
    offset = 0
    for part in ordered:
        name = part.branch.encode("utf-8")
        _check_branch(part.branch, name)
        table += _U16.pack(len(name)) + name
        table += _ENTRY.pack(part.number, offset, part.stored_len, part.raw_len, part.digest)
        offset += part.stored_len
    fixed = _FIXED.pack(
        MAGIC, FORMAT_VERSION, TM_CODES[type_manager], 0, oid_bytes(oid), len(ordered), offset
    )
    crc = zlib.crc32(table, zlib.crc32(fixed))
    emit(fixed + bytes(table) + _CRC.pack(crc))
    for part in ordered:
        data = part.load()
        if len(data) != part.stored_len:
            raise MediaError(
                f"version {part.branch}/{part.number} changed length while being copied"
            )
        emit(data)


def _check_branch(branch: str, encoded: bytes) -> None:
    if not branch.startswith("/") or len(encoded) > MAX_BRANCH or "\x00" in branch:
        raise MediaError(f"bad branch name {branch!r}")


class _Short(Exception):
    """The bytes at hand end before the header does."""


def read_header(handle: BinaryIO, name: str, size: int | None = None) -> Header:
    """Parse and check the header; MediaError (naming `name`) for structural damage."""
    if size is None:
        size = os.fstat(handle.fileno()).st_size
    buf = handle.read(_FIRST_READ)
    while True:
        try:
            return _parse(buf, name, size)
        except _Short:
            more = handle.read(max(len(buf), _FIRST_READ))
            if not more:
                raise _truncated(name) from None
            buf += more


def parse(blob: bytes, name: str) -> Header:
    """The header of a container held whole in memory (small containers: one read)."""
    try:
        return _parse(blob, name, len(blob))
    except _Short:
        raise _truncated(name) from None


def _truncated(name: str) -> MediaError:
    return MediaError(f"container {name} is truncated (header cut short)", fix=_FIX_HINT)


def _parse(buf: bytes, name: str, size: int) -> Header:
    """Header from the first bytes of a container of `size` bytes (_Short if too few)."""
    oid, type_manager, entries, data_start, data_len = _table(buf, name, size)
    return Header(oid, type_manager, tuple(map(VersionEntry._make, entries)), data_start, data_len)


Row = tuple[str, int, int, int, int, bytes]  # branch, number, offset, stored, raw, digest


def _table(buf: bytes, name: str, size: int) -> tuple[str, str, list[Row], int, int]:
    """(oid, type manager, version rows as plain tuples, data start, data length).

    Every structural check of the format, in one pass: the scan runs this for
    each of hundreds of thousands of files, so the rows stay plain tuples and
    the table checks (branch names, order, bounds, lengths) run inside the
    parsing loop; the first problem found is reported as before.
    """
    have = len(buf)
    if buf[: len(MAGIC)] != MAGIC[:have]:
        raise MediaError(f"{name} is not a pool container (bad magic)", fix=_FIX_HINT)
    if have < _FIXED.size:
        raise _Short
    magic, version, code, reserved, oid, count, data_len = _FIXED.unpack_from(buf, 0)
    if magic != MAGIC:
        raise MediaError(f"{name} is not a pool container (bad magic)", fix=_FIX_HINT)
    if version != FORMAT_VERSION or reserved != 0:
        raise MediaError(f"container {name} has an unknown format version {version}")
    if not 1 <= code <= len(TYPE_MANAGERS):
        raise MediaError(f"container {name} has an unknown type manager code {code}", fix=_FIX_HINT)
    if count < 1 or count > MAX_VERSIONS or count * (_U16.size + _ENTRY.size) > size:
        raise MediaError(f"container {name} has an impossible version count", fix=_FIX_HINT)
    pos = _FIXED.size
    entries: list[Row] = []
    unpack_u16, unpack_entry, entry_size = _U16.unpack_from, _ENTRY.unpack_from, _ENTRY.size
    same_lengths = code != _COMPRESSED
    problem = ""  # the first table problem, raised once the header is known to be whole
    previous: VersionKey | None = None
    for _ in range(count):
        end = pos + 2
        if end > have:
            raise _Short
        (length,) = unpack_u16(buf, pos)
        pos, end = end, end + length
        if end + entry_size > have:
            raise _Short
        try:
            branch = buf[pos:end].decode("utf-8")
        except UnicodeDecodeError:
            branch = ""
        number, offset, stored, raw, digest = unpack_entry(buf, end)
        entries.append((branch, number, offset, stored, raw, digest))
        pos = end + entry_size
        if not problem:
            key = (branch, number)
            if not branch.startswith("/"):
                problem = "has a bad branch name"
            elif previous is not None and key <= previous:
                problem = "has an unordered version table"
            elif offset + stored > data_len:
                problem = "points past its data section"
            elif same_lengths and stored != raw:
                problem = "has inconsistent lengths"
            previous = key
    if pos + _CRC.size > have:
        raise _Short
    (crc,) = _CRC.unpack_from(buf, pos)
    if zlib.crc32(memoryview(buf)[:pos]) != crc:
        raise MediaError(f"container {name} has a damaged header (CRC mismatch)", fix=_FIX_HINT)
    data_start = pos + _CRC.size
    if size < data_start + data_len:
        raise MediaError(
            f"container {name} is truncated ({size:,} of {data_start + data_len:,} bytes)",
            fix=_FIX_HINT,
        )
    if size > data_start + data_len:
        raise MediaError(f"container {name} has trailing bytes after its data", fix=_FIX_HINT)
    if code == _WHOLE_COPY and count != 1:
        raise MediaError(f"whole-copy container {name} holds {count} versions")
    if problem:
        raise MediaError(f"container {name} {problem}", fix=_FIX_HINT)
    return oid.hex(), TYPE_MANAGERS[code - 1], entries, data_start, data_len


def inspect(
    blob: bytes, name: str, verify: bool
) -> tuple[str, str, list[Row], list[VersionKey] | None]:
    """(oid, type manager, version rows, corrupt versions or None) of a whole container.

    The scan's per-file path: the same checks as `parse` and `corrupt_in`, with
    no per-file objects beyond plain tuples.
    """
    try:
        oid, type_manager, entries, data_start, _data_len = _table(blob, name, len(blob))
    except _Short:
        raise _truncated(name) from None
    if not verify:
        return oid, type_manager, entries, None
    bad: list[VersionKey] = []
    view = memoryview(blob)
    sha256 = hashlib.sha256
    for branch, number, offset, stored, raw_len, digest in entries:
        start = data_start + offset
        try:
            data = unstore(type_manager, view[start : start + stored], raw_len)
        except CorruptVersion:
            bad.append((branch, number))
            continue
        if len(data) != raw_len or sha256(data).digest() != digest:
            bad.append((branch, number))
    return oid, type_manager, entries, bad


def read_stored(handle: BinaryIO, header: Header, entry: VersionEntry) -> bytes:
    handle.seek(header.data_start + entry.offset)
    data = handle.read(entry.stored)
    if len(data) != entry.stored:
        raise MediaError("container is truncated (data cut short)", fix=_FIX_HINT)
    return data


def read_version(handle: BinaryIO, header: Header, entry: VersionEntry) -> bytes:
    """A version's raw data, checked against its digest (CorruptVersion if not)."""
    return check_version(header, entry, read_stored(handle, header, entry))


def check_version(header: Header, entry: VersionEntry, stored: bytes) -> bytes:
    """The raw data of a version's stored bytes, checked against its digest."""
    raw = unstore(header.type_manager, stored, entry.raw)
    if len(raw) != entry.raw or hashlib.sha256(raw).digest() != entry.digest:
        raise CorruptVersion(f"version {entry.branch}/{entry.number} does not match its digest")
    return raw


def corrupt_in(blob: bytes, header: Header) -> list[VersionKey]:
    """Like corrupt_versions, for a container held whole in memory."""
    bad = []
    view = memoryview(blob)
    for item in header.entries:
        start = header.data_start + item.offset
        try:
            raw = unstore(header.type_manager, bytes(view[start : start + item.stored]), item.raw)
        except CorruptVersion:
            bad.append(item.key)
            continue
        if len(raw) != item.raw or hashlib.sha256(raw).digest() != item.digest:
            bad.append(item.key)
    return bad


def corrupt_versions(handle: BinaryIO, header: Header) -> list[VersionKey]:
    """Versions whose data does not match their digest (empty for a healthy container)."""
    bad = []
    for item in header.entries:
        try:
            read_version(handle, header, item)
        except CorruptVersion:
            bad.append(item.key)
    return bad
