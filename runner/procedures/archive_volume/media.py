"""The emulated archive volume: `volumes/<volume_ref>.vol`.

Layout (all integers little-endian, documented in docs/archive_volume.md):

    header, 64 bytes:
      0  8s   magic b"ARCHVOL1"
      8  u16  format version (1)
     10  u16  header size (64)
     12  32s  volume_ref, ASCII, NUL padded
     44  u32  block size in bytes (>= 64)
     48  u64  block count
     56  u32  CRC32 of bytes 0..55
     60  4x   zero
    then block_count blocks of block_size bytes; block n starts at 64 + n * block_size:
      0  u64  ordinal (must equal n)
      8  u64  object_id (0 = free block)
     16  u32  payload length
     20  u32  CRC32 of the payload
     24  ...  payload, zero padded to the block size

An unreadable block (emulated damage) is a block whose bytes are the
`DAMAGE_MARK` pattern repeated; a block whose ordinal or CRC does not match is
corrupt. Reading either raises `MediaError` naming the ordinal. A file whose
header is bad or whose size is not 64 + count * size is structurally broken
and gives a `MediaError` as soon as it is opened.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from runner.errors import MediaError

MAGIC = b"ARCHVOL1"
VERSION = 1
HEADER_SIZE = 64
_HEADER = struct.Struct("<8sHH32sIQ")  # 56 bytes, then u32 CRC and 4 zero bytes
_BLOCK = struct.Struct("<QQII")  # 24 bytes
BLOCK_HEADER_SIZE = _BLOCK.size
MIN_BLOCK_SIZE = 64
MAX_BLOCK_SIZE = 1 << 20
DAMAGE_MARK = b"\xde\xad\xbe\xefUNREADABLE\x00\x00"  # 16 bytes


@dataclass(frozen=True)
class VolumeHeader:
    volume_ref: str
    block_size: int
    block_count: int

    @property
    def capacity(self) -> int:
        """Largest payload one block holds."""
        return self.block_size - BLOCK_HEADER_SIZE

    @property
    def file_size(self) -> int:
        return HEADER_SIZE + self.block_count * self.block_size


@dataclass(frozen=True)
class Block:
    ordinal: int
    object_id: int  # 0 for a free block
    payload: bytes


def checksum(payload: bytes) -> str:
    """The catalog's object checksum: CRC32 of the payload as 8 hex digits."""
    return f"{zlib.crc32(payload):08x}"


def encode_header(header: VolumeHeader) -> bytes:
    ref = header.volume_ref.encode("ascii")
    if len(ref) > 32:
        raise MediaError(f"volume_ref {header.volume_ref!r} is longer than 32 bytes")
    if not MIN_BLOCK_SIZE <= header.block_size <= MAX_BLOCK_SIZE:
        raise MediaError(f"block size {header.block_size} is out of range")
    body = _HEADER.pack(MAGIC, VERSION, HEADER_SIZE, ref, header.block_size, header.block_count)
    return body + struct.pack("<I", zlib.crc32(body)) + b"\x00" * 4


_RESTORE_IMAGE = "restore the volume file from the repair shop's image"


def decode_header(data: bytes, name: str = "volume") -> VolumeHeader:
    """Parse and check a header; every defect is a MediaError with the reason."""
    if len(data) < HEADER_SIZE:
        raise MediaError(
            f"{name}: truncated header ({len(data)} of {HEADER_SIZE} bytes)",
            fix=_RESTORE_IMAGE,
        )
    magic, version, size, ref, block_size, block_count = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise MediaError(
            f"{name}: not an archive volume file (bad magic {magic!r})", fix=_RESTORE_IMAGE
        )
    (crc,) = struct.unpack_from("<I", data, _HEADER.size)
    if crc != zlib.crc32(data[: _HEADER.size]):
        raise MediaError(
            f"{name}: volume header is corrupt (checksum mismatch)", fix=_RESTORE_IMAGE
        )
    if version != VERSION or size != HEADER_SIZE:
        raise MediaError(f"{name}: unsupported volume format version {version}", fix=_RESTORE_IMAGE)
    if not MIN_BLOCK_SIZE <= block_size <= MAX_BLOCK_SIZE:
        raise MediaError(f"{name}: block size {block_size} is out of range", fix=_RESTORE_IMAGE)
    try:
        volume_ref = ref.rstrip(b"\x00").decode("ascii")
    except UnicodeDecodeError as exc:
        raise MediaError(
            f"{name}: volume_ref in the header is not ASCII", fix=_RESTORE_IMAGE
        ) from exc
    return VolumeHeader(volume_ref, block_size, block_count)


def encode_block(header: VolumeHeader, block: Block) -> bytes:
    if len(block.payload) > header.capacity:
        raise MediaError(
            f"object {block.object_id} ({len(block.payload)} bytes) does not fit a "
            f"{header.block_size}-byte block"
        )
    payload = block.payload
    head = _BLOCK.pack(block.ordinal, block.object_id, len(payload), zlib.crc32(payload))
    return (head + block.payload).ljust(header.block_size, b"\x00")


def damaged_block(header: VolumeHeader) -> bytes:
    """The bytes of an unreadable block."""
    reps = header.block_size // len(DAMAGE_MARK) + 1
    return (DAMAGE_MARK * reps)[: header.block_size]


def is_damaged(raw: bytes) -> bool:
    return raw[: len(DAMAGE_MARK)] == DAMAGE_MARK


def decode_block(header: VolumeHeader, ordinal: int, raw: bytes) -> Block:
    """Check one block read at `ordinal`; damage or corruption -> MediaError."""
    name = header.volume_ref
    if len(raw) != header.block_size:
        raise MediaError(f"{name}: block {ordinal} is truncated")
    if is_damaged(raw):
        raise MediaError(f"{name}: block {ordinal} is unreadable")
    stored_ordinal, object_id, length, crc = _BLOCK.unpack_from(raw)
    if stored_ordinal != ordinal:
        raise MediaError(f"{name}: block {ordinal} is corrupt (it says ordinal {stored_ordinal})")
    if length > header.capacity:
        raise MediaError(f"{name}: block {ordinal} is corrupt (payload length {length})")
    payload = raw[BLOCK_HEADER_SIZE : BLOCK_HEADER_SIZE + length]
    if zlib.crc32(payload) != crc:
        raise MediaError(f"{name}: block {ordinal} is corrupt (checksum mismatch)")
    return Block(ordinal, object_id, payload)


class VolumeReader:
    """Random and sequential access to one volume file, checked on open."""

    def __init__(self, handle: BinaryIO, name: str, expected_ref: str | None = None) -> None:
        self._handle = handle
        self.header = decode_header(handle.read(HEADER_SIZE), name)
        if expected_ref is not None and self.header.volume_ref != expected_ref:
            raise MediaError(
                f"{name}: the file holds volume {self.header.volume_ref}, not {expected_ref}",
                fix="put the right volume file in place",
            )
        handle.seek(0, 2)
        actual = handle.tell()
        if actual != self.header.file_size:
            kind = "truncated" if actual < self.header.file_size else "longer than its header says"
            raise MediaError(
                f"{name}: volume file is {kind} ({actual:,} bytes, expected "
                f"{self.header.file_size:,} for {self.header.block_count:,} blocks)",
                fix=_RESTORE_IMAGE,
            )

    def read(self, ordinal: int) -> Block:
        if not 0 <= ordinal < self.header.block_count:
            raise MediaError(
                f"{self.header.volume_ref}: ordinal {ordinal} is outside the volume "
                f"(0..{self.header.block_count - 1})"
            )
        self._handle.seek(HEADER_SIZE + ordinal * self.header.block_size)
        return decode_block(self.header, ordinal, self._handle.read(self.header.block_size))

    def scan(self, chunk_blocks: int = 4096) -> Iterator[tuple[int, Block | MediaError]]:
        """Every block in order, as the block or the error reading it gave."""
        size = self.header.block_size
        self._handle.seek(HEADER_SIZE)
        ordinal = 0
        while ordinal < self.header.block_count:
            chunk = self._handle.read(size * min(chunk_blocks, self.header.block_count - ordinal))
            for offset in range(0, len(chunk), size):
                try:
                    yield ordinal, decode_block(self.header, ordinal, chunk[offset : offset + size])
                except MediaError as exc:
                    yield ordinal, exc
                ordinal += 1
            if not chunk:
                break

    def close(self) -> None:
        self._handle.close()


def unreadable_ranges(reader: VolumeReader) -> Iterator[tuple[int, int]]:
    """Merge the unreadable (damaged or corrupt) blocks into inclusive ranges."""
    start: int | None = None
    last = -1
    for ordinal, block in reader.scan():
        if isinstance(block, MediaError):
            if start is None:
                start = ordinal
            last = ordinal
        elif start is not None:
            yield start, last
            start = None
    if start is not None:
        yield start, last


class VolumeWriter:
    """Writes a volume sequentially (the world generator's side of the format)."""

    def __init__(self, handle: BinaryIO, volume_ref: str, block_size: int) -> None:
        self._handle = handle
        self.header = VolumeHeader(volume_ref, block_size, 0)
        self._next = 0
        handle.write(encode_header(self.header))

    def append(self, object_id: int, payload: bytes) -> int:
        """Write the next block; returns its ordinal."""
        ordinal = self._next
        self._handle.write(encode_block(self.header, Block(ordinal, object_id, payload)))
        self._next += 1
        return ordinal

    @property
    def used(self) -> int:
        return self._next

    def finish(self, free_blocks: int = 0) -> VolumeHeader:
        """Append free blocks, then rewrite the header with the final block count.

        The generator does not know how many blocks a volume gets until its
        last object is written, so the header is written twice.
        """
        self.header = VolumeHeader(
            self.header.volume_ref, self.header.block_size, self._next + free_blocks
        )
        for _ in range(free_blocks):
            self._handle.write(encode_block(self.header, Block(self._next, 0, b"")))
            self._next += 1
        self._handle.seek(0)
        self._handle.write(encode_header(self.header))
        self._handle.seek(0, 2)
        return self.header


def damage(handle: BinaryIO, header: VolumeHeader, begin: int, end: int) -> None:
    """Make blocks begin..end (inclusive) unreadable, as a bad platter would."""
    bad = damaged_block(header)
    handle.seek(HEADER_SIZE + begin * header.block_size)
    for _ in range(begin, end + 1):
        handle.write(bad)
