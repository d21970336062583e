"""The keyed file's on-disk format: data file header, key file control block, key blocks.

Byte layout (documented in docs/keyed_file.md): all integers little-endian
except the record number inside a key entry, which is big-endian so that an
entry (key bytes + record number) sorts by key, then record number, as plain
bytes. Every header and block carries a CRC-32, so a torn or foreign file is
refused with a `MediaError` instead of being "repaired" into nonsense.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field, replace
from typing import BinaryIO

from runner.errors import MediaError

SECTOR = 512
DATA_MAGIC = b"KDAT"
KEY_MAGIC = b"KEYF"
BLOCK_MAGIC = b"KB"
VERSION = 1

DATA_HEADER_SIZE = SECTOR  # one sector before record 0
CONTROL_SECTORS = 4  # the key file's control block; key blocks start after it
CONTROL_SIZE = CONTROL_SECTORS * SECTOR
BLOCK_HEADER_SIZE = 16
RECNO_SIZE = 4  # record number in a leaf entry (big-endian)
CHILD_SIZE = 4  # child sector address in an internal entry (little-endian)
MAX_KEYS = 16
MAX_SECTORS_PER_BLOCK = 64
MAX_RECORD_LENGTH = 60_000
MAX_RECORDS = 2**32 - 1
USER_SIZE = 32

LIVE = 0
DELETED = 1

_DATA = struct.Struct("<4sHHQQ")  # magic, version, record length, FS EOF, keyed EOF
_CONTROL = struct.Struct("<4sHHHHHBBIq32s")  # see Control
_DESCRIPTOR = struct.Struct("<HHBxxxII")  # position, length, flags, root, reserved
_BLOCK = struct.Struct("<2sBBHHII")  # magic, key no, level, count, reserved x2, crc
DESCRIPTORS_AT = 64
DUPLICATES = 0x01

#: What an operator can do about a damaged pair (used in every MediaError fix).
FIX_RESTORE = "restore the keyed file pair from a backup; this damage is not one repair can fix"


def _crc(data: bytes | bytearray | memoryview) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


# -- data file header -------------------------------------------------------
@dataclass(frozen=True)
class DataHeader:
    """The data file's first sector. EOFs count records, not bytes."""

    record_length: int  # payload bytes; each record slot is 1 mark byte + payload
    fs_eof: int  # the file system's end of file (records it says the file holds)
    keyed_eof: int  # the keyed file's own end of data records

    @property
    def slot(self) -> int:
        return self.record_length + 1

    def encode(self) -> bytes:
        body = _DATA.pack(DATA_MAGIC, VERSION, self.record_length, self.fs_eof, self.keyed_eof)
        raw = body.ljust(DATA_HEADER_SIZE - 4, b"\0")
        return raw + struct.pack("<I", _crc(raw))

    @classmethod
    def decode(cls, raw: bytes, name: str) -> DataHeader:
        if len(raw) < DATA_HEADER_SIZE:
            raise MediaError(
                f"data file {name} is truncated: {len(raw)} bytes, shorter than its "
                f"{DATA_HEADER_SIZE}-byte header",
                fix=FIX_RESTORE,
            )
        magic, version, length, fs_eof, keyed_eof = _DATA.unpack_from(raw)
        if magic != DATA_MAGIC:
            raise MediaError(
                f"{name} is not a keyed data file (magic {magic!r}, expected {DATA_MAGIC!r})",
                fix="check the data_file path: it must name the .dat file of the pair",
            )
        if version != VERSION:
            raise MediaError(
                f"data file {name} has format version {version}; this runner "
                f"reads version {VERSION}",
                fix="use a matching runner version",
            )
        (stored,) = struct.unpack_from("<I", raw, DATA_HEADER_SIZE - 4)
        if stored != _crc(raw[: DATA_HEADER_SIZE - 4]):
            raise MediaError(
                f"data file {name}: header checksum mismatch (corrupt header)", fix=FIX_RESTORE
            )
        if not 1 <= length <= MAX_RECORD_LENGTH or max(fs_eof, keyed_eof) > MAX_RECORDS:
            raise MediaError(
                f"data file {name}: header values out of range "
                f"(record length {length}, EOFs {fs_eof}/{keyed_eof})",
                fix=FIX_RESTORE,
            )
        return cls(length, fs_eof, keyed_eof)


# -- key file control block -------------------------------------------------
@dataclass(frozen=True)
class KeyDescriptor:
    """Where a key lies in the record, whether it allows duplicates, and its root block."""

    position: int
    length: int
    duplicates: bool
    root: int  # sector address of the root key block

    @property
    def width(self) -> int:
        """Bytes of one leaf entry: key bytes + record number."""
        return self.length + RECNO_SIZE


@dataclass(frozen=True)
class Control:
    """The key file's control block (its first CONTROL_SECTORS sectors)."""

    sectors_per_block: int
    record_length: int
    crashed: bool
    key_eof: int  # in sectors: the first sector after the last key block in use
    last_reset: int  # unix seconds of the last repair/reload; 0 = never
    last_reset_user: str
    keys: tuple[KeyDescriptor, ...] = field(default_factory=tuple)

    @property
    def block_bytes(self) -> int:
        return self.sectors_per_block * SECTOR

    def with_(self, **changes: object) -> Control:
        return replace(self, **changes)  # type: ignore[arg-type]

    def encode(self) -> bytes:
        user = self.last_reset_user.encode("utf-8")[:USER_SIZE]
        head = _CONTROL.pack(
            KEY_MAGIC,
            VERSION,
            SECTOR,
            self.sectors_per_block,
            len(self.keys),
            self.record_length,
            int(self.crashed),
            0,
            self.key_eof,
            self.last_reset,
            user.ljust(USER_SIZE, b"\0"),
        )
        raw = bytearray(CONTROL_SIZE)
        raw[: len(head)] = head
        for i, key in enumerate(self.keys):
            flags = DUPLICATES if key.duplicates else 0
            _DESCRIPTOR.pack_into(
                raw,
                DESCRIPTORS_AT + i * _DESCRIPTOR.size,
                key.position,
                key.length,
                flags,
                key.root,
                0,
            )
        struct.pack_into("<I", raw, CONTROL_SIZE - 4, _crc(raw[: CONTROL_SIZE - 4]))
        return bytes(raw)

    @classmethod
    def decode(cls, raw: bytes, name: str) -> Control:
        if len(raw) < CONTROL_SIZE:
            raise MediaError(
                f"key file {name} is truncated: {len(raw)} bytes, shorter than its "
                f"{CONTROL_SIZE}-byte control block",
                fix=FIX_RESTORE,
            )
        (magic, version, sector, spb, nkeys, reclen, crashed, _pad, key_eof, last_reset, user) = (
            _CONTROL.unpack_from(raw)
        )
        if magic != KEY_MAGIC:
            raise MediaError(
                f"{name} is not a keyed key file (magic {magic!r}, expected {KEY_MAGIC!r})",
                fix="check the key_file path: it must name the .key file of the pair",
            )
        if version != VERSION:
            raise MediaError(
                f"key file {name} has format version {version}; this runner "
                f"reads version {VERSION}",
                fix="use a matching runner version",
            )
        (stored,) = struct.unpack_from("<I", raw, CONTROL_SIZE - 4)
        if stored != _crc(raw[: CONTROL_SIZE - 4]):
            raise MediaError(
                f"key file {name}: control block checksum mismatch (corrupt)", fix=FIX_RESTORE
            )
        problems = []
        if sector != SECTOR:
            problems.append(f"sector size {sector}")
        if not 1 <= spb <= MAX_SECTORS_PER_BLOCK:
            problems.append(f"sectors per block {spb}")
        if not 1 <= nkeys <= MAX_KEYS:
            problems.append(f"{nkeys} keys")
        if not 1 <= reclen <= MAX_RECORD_LENGTH:
            problems.append(f"record length {reclen}")
        if crashed not in (0, 1):
            problems.append(f"crash flag {crashed}")
        if problems:
            raise MediaError(
                f"key file {name}: control block out of range: " + ", ".join(problems),
                fix=FIX_RESTORE,
            )
        keys = []
        for i in range(nkeys):
            pos, length, flags, root, _r = _DESCRIPTOR.unpack_from(
                raw, DESCRIPTORS_AT + i * _DESCRIPTOR.size
            )
            if length < 1 or pos + length > reclen:
                raise MediaError(
                    f"key file {name}: key {i + 1} (position {pos}, length "
                    f"{length}) does not fit a {reclen}-byte record",
                    fix=FIX_RESTORE,
                )
            keys.append(KeyDescriptor(pos, length, bool(flags & DUPLICATES), root))
        control = cls(
            spb,
            reclen,
            bool(crashed),
            key_eof,
            last_reset,
            user.rstrip(b"\0").decode("utf-8", "replace"),
            tuple(keys),
        )
        if long := too_long_keys(control):
            raise MediaError(
                f"key file {name}: key {long[0]} is too long for {spb}-sector key blocks",
                fix=FIX_RESTORE,
            )
        return control


def leaf_capacity(control: Control, key: KeyDescriptor) -> int:
    return (control.block_bytes - BLOCK_HEADER_SIZE) // key.width


def internal_capacity(control: Control, key: KeyDescriptor) -> int:
    return (control.block_bytes - BLOCK_HEADER_SIZE) // (key.width + CHILD_SIZE)


def too_long_keys(control: Control) -> list[int]:
    """The keys (numbered from 1) whose key blocks cannot hold two entries."""
    return [i for i, key in enumerate(control.keys, 1) if internal_capacity(control, key) < 2]


def is_block_address(control: Control, address: int) -> bool:
    """Key blocks sit at CONTROL_SECTORS + k * sectors_per_block."""
    return (
        address >= CONTROL_SECTORS and (address - CONTROL_SECTORS) % control.sectors_per_block == 0
    )


# -- key blocks ---------------------------------------------------------------
def encode_block(key_no: int, level: int, count: int, payload: bytes, size: int) -> bytes:
    """A key block: 16-byte header, `count` entries (payload), zero padding."""
    body = payload.ljust(size - BLOCK_HEADER_SIZE, b"\0")
    head = _BLOCK.pack(BLOCK_MAGIC, key_no, level, count, 0, 0, 0)
    crc = zlib.crc32(body, zlib.crc32(head[:12])) & 0xFFFFFFFF
    return head[:12] + struct.pack("<I", crc) + body


@dataclass(frozen=True)
class BlockHeader:
    key_no: int
    level: int
    count: int


def decode_block(raw: bytes, *, address: int, key_no: int, width: int, name: str) -> BlockHeader:
    """Check a key block's magic, checksum, owner and count; return its header."""
    magic, owner, level, count, _r1, _r2, stored = _BLOCK.unpack_from(raw)
    where = f"key file {name}: key {key_no} block at sector {address}"
    if magic != BLOCK_MAGIC:
        raise MediaError(f"{where} is not a key block (magic {magic!r})", fix=FIX_RESTORE)
    if (
        stored
        != zlib.crc32(memoryview(raw)[BLOCK_HEADER_SIZE:], zlib.crc32(memoryview(raw)[:12]))
        & 0xFFFFFFFF
    ):
        raise MediaError(f"{where}: checksum mismatch (torn or corrupt block)", fix=FIX_RESTORE)
    if owner != key_no:
        raise MediaError(
            f"{where} belongs to key {owner} (crossed B-tree pointers)", fix=FIX_RESTORE
        )
    room = (len(raw) - BLOCK_HEADER_SIZE) // (width + (CHILD_SIZE if level else 0))
    if count > room:
        raise MediaError(
            f"{where} claims {count} entries; it holds at most {room}", fix=FIX_RESTORE
        )
    return BlockHeader(owner, level, count)


# -- opening a pair -----------------------------------------------------------
@dataclass(frozen=True)
class PairInfo:
    """Both headers plus the physical sizes: everything verify prints."""

    data_name: str
    key_name: str
    header: DataHeader
    control: Control
    data_size: int  # bytes on disk
    key_size: int

    @property
    def key_sectors(self) -> int:
        """Whole sectors physically present in the key file."""
        return self.key_size // SECTOR

    @property
    def physical_records(self) -> int:
        return max(0, (self.data_size - DATA_HEADER_SIZE) // self.header.slot)


def file_size(handle: BinaryIO) -> int:
    handle.seek(0, 2)
    size = handle.tell()
    handle.seek(0)
    return size


def read_pair_info(
    data: BinaryIO, key: BinaryIO, data_name: str, key_name: str, *, no_check: bool
) -> PairInfo:
    """Read and cross-check both headers. A crashed file needs `no_check`."""
    data_size, key_size = file_size(data), file_size(key)
    header = DataHeader.decode(data.read(DATA_HEADER_SIZE), data_name)
    control = Control.decode(key.read(CONTROL_SIZE), key_name)
    if header.record_length != control.record_length:
        raise MediaError(
            f"{data_name} and {key_name} are not a pair: record length "
            f"{header.record_length} in the data file, {control.record_length} in the key file",
            fix="check the data_file and key_file paths",
        )
    info = PairInfo(data_name, key_name, header, control, data_size, key_size)
    if info.physical_records < header.keyed_eof:
        raise MediaError(
            f"data file {data_name} is truncated: the keyed EOF says {header.keyed_eof:,} "
            f"records but the file holds {info.physical_records:,}",
            fix=FIX_RESTORE,
        )
    if control.key_eof > info.key_sectors or control.key_eof < CONTROL_SECTORS:
        raise MediaError(
            f"key file {key_name}: key-file EOF {control.key_eof:,} lies outside the file "
            f"({info.key_sectors:,} sectors on disk; truncated?)",
            fix=FIX_RESTORE,
        )
    if control.crashed and not no_check:
        raise MediaError(
            f"keyed file {data_name} is marked crashed (it was open when the system failed) "
            "and cannot be opened normally",
            fix="run keyed.repair on it, or open it read-only with no_check: true",
        )
    return info
