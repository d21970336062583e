"""An independent reader of the documented byte layout (docs/keyed_file.md).

Deliberately shares no code with the package: tests compare what the actions
wrote against what the format document says, not against the package's own
reader.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

SECTOR = 512


@dataclass
class Pair:
    record_length: int
    fs_eof: int
    keyed_eof: int
    crashed: bool
    key_eof: int
    spb: int
    last_reset: int
    last_reset_user: str
    keys: list[tuple[int, int, bool, int]]  # position, length, duplicates, root
    records: list[tuple[int, bytes]]  # (mark, payload) below the keyed EOF
    trees: dict[int, list[tuple[bytes, int]]]  # key no -> (value, recno) in tree order
    blocks: dict[int, list[int]]  # key no -> block addresses


def read_pair(data_path: Path, key_path: Path) -> Pair:
    data = data_path.read_bytes()
    key = key_path.read_bytes()
    assert data[:4] == b"KDAT"
    _v, reclen, fs_eof, keyed_eof = struct.unpack_from("<HHQQ", data, 4)
    slot = reclen + 1
    records = [
        (data[512 + r * slot], data[512 + r * slot + 1 : 512 + (r + 1) * slot])
        for r in range(keyed_eof)
    ]
    assert key[:4] == b"KEYF"
    (_v, _sector, spb, nkeys, kreclen, crashed, _pad, key_eof, last_reset, user) = (
        struct.unpack_from("<HHHHHBBIq32s", key, 4)
    )
    assert kreclen == reclen
    keys = []
    for i in range(nkeys):
        pos, length, flags, root = struct.unpack_from("<HHB3xI", key, 64 + 16 * i)
        keys.append((pos, length, bool(flags & 1), root))
    trees: dict[int, list[tuple[bytes, int]]] = {}
    blocks: dict[int, list[int]] = {}
    for key_no, (_pos, length, _dups, root) in enumerate(keys, start=1):
        out: list[tuple[bytes, int]] = []
        seen: list[int] = []
        _descend(key, root, spb, length, key_no, out, seen)
        trees[key_no], blocks[key_no] = out, seen
    return Pair(
        reclen,
        fs_eof,
        keyed_eof,
        bool(crashed),
        key_eof,
        spb,
        last_reset,
        user.rstrip(b"\0").decode(),
        keys,
        records,
        trees,
        blocks,
    )


def _descend(
    key: bytes,
    address: int,
    spb: int,
    length: int,
    key_no: int,
    out: list[tuple[bytes, int]],
    seen: list[int],
) -> int:
    assert address not in seen, "block reached twice"
    seen.append(address)
    block = key[address * SECTOR : (address + spb) * SECTOR]
    magic, owner, level, count = struct.unpack_from("<2sBBH", block)
    assert magic == b"KB" and owner == key_no
    if level == 0:
        for i in range(count):
            at = 16 + i * (length + 4)
            out.append(
                (
                    block[at : at + length],
                    int.from_bytes(block[at + length : at + length + 4], "big"),
                )
            )
        return 0
    child_levels = set()
    for i in range(count):
        at = 16 + i * (length + 8)
        child = int.from_bytes(block[at + length + 4 : at + length + 8], "little")
        child_levels.add(_descend(key, child, spb, length, key_no, out, seen))
    assert child_levels == {level - 1}, "unbalanced tree"
    return level


def expected_entries(pair: Pair, key_no: int) -> list[tuple[bytes, int]]:
    """(value, recno) of every valid record for a key, in key order."""
    pos, length, _dups, _root = pair.keys[key_no - 1]
    return sorted(
        (payload[pos : pos + length], r)
        for r, (mark, payload) in enumerate(pair.records)
        if mark == 0
    )


def keys_match_records(pair: Pair) -> bool:
    return all(pair.trees[k] == expected_entries(pair, k) for k in pair.trees)
