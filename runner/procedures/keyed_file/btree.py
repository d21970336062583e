"""Key B-trees: walking one in key order (with every structural check), and
building a balanced one bottom-up from sorted entries.

A key's B-tree is a B+tree: leaves (level 0) hold entries `key bytes +
record number (u32 big-endian)` in ascending byte order; an internal block
(level >= 1) holds, per child, the child's first entry and the child's sector
address (u32 little-endian). All leaves are at level 0 and a child's level is
its parent's minus one.
"""

from __future__ import annotations

import functools
import itertools
import math
import operator
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import BinaryIO

from runner.errors import MediaError
from runner.procedures.keyed_file.media import (
    BLOCK_HEADER_SIZE,
    CHILD_SIZE,
    CONTROL_SECTORS,
    FIX_RESTORE,
    RECNO_SIZE,
    SECTOR,
    BlockHeader,
    Control,
    KeyDescriptor,
    PairInfo,
    decode_block,
    encode_block,
    internal_capacity,
    is_block_address,
    leaf_capacity,
)
from runner.procedures.keyed_file.records import Progress, no_progress

MAX_LEVELS = 32


@cache
def entries_struct(width: int, count: int) -> struct.Struct:
    """Splits a leaf's payload into `count` entries of `width` bytes."""
    return struct.Struct(f"{width}s" * count)


@cache
def recnos_struct(key_length: int, count: int) -> struct.Struct:
    """Pulls the `count` record numbers out of a leaf's payload."""
    return struct.Struct(">" + f"{key_length}xI" * count)


@cache
def children_struct(width: int, count: int) -> struct.Struct:
    """Pulls the `count` child addresses out of an internal block's payload."""
    return struct.Struct("<" + f"{width}xI" * count)


def recno_of(entry: bytes) -> int:
    return int.from_bytes(entry[-RECNO_SIZE:], "big")


@dataclass
class Leaf:
    """One leaf as the walker hands it over, in key order."""

    address: int
    payload: bytes  # the leaf's entries, back to back
    width: int
    count: int

    @functools.cached_property
    def recnos(self) -> tuple[int, ...]:
        """The entries' record numbers (only decoded when someone asks)."""
        if not self.count:
            return ()
        return recnos_struct(self.width - RECNO_SIZE, self.count).unpack(self.payload)

    @functools.cached_property
    def entries(self) -> tuple[bytes, ...]:
        """The entries as separate byte strings (only built when someone asks)."""
        return entries_struct(self.width, self.count).unpack(self.payload)


@dataclass
class TreeShape:
    """What the repair report prints per key (measured before any deletion)."""

    key_no: int
    levels: int = 0
    blocks: int = 0
    root_keys: int = 0
    tree_keys: int = 0
    entries: int = 0  # leaf and internal entries, for utilisation
    capacity: int = 0
    largest_address: int = 0

    @property
    def utilisation(self) -> float:
        return round(100.0 * self.entries / self.capacity, 1) if self.capacity else 0.0


def _forever() -> Iterator[int]:
    return itertools.count()


def walk(
    handle: BinaryIO,
    info: PairInfo,
    key_no: int,
    on_leaf: Callable[[Leaf], None],
    progress: Progress[int] = no_progress,
    *,
    deep: bool = False,
) -> TreeShape:
    """Visit key `key_no`'s leaves in key order, checking the whole structure.

    Refuses (MediaError) a pointer outside the key file or off a block
    boundary, a truncated block, a block reached twice (cyclic or shared
    pointers), wrong levels, bad checksums and entries out of order: between
    leaves always, inside each leaf when `deep` (verify). Memory: one byte per
    block of the key file for the visited map, plus the stack.
    """
    control = info.control
    key = control.keys[key_no - 1]
    spb, size = control.sectors_per_block, control.block_bytes
    name = info.key_name
    seen = bytearray(max(0, info.key_sectors - CONTROL_SECTORS) // spb + 1)
    shape = TreeShape(key_no)
    leaf_cap, inner_cap = leaf_capacity(control, key), internal_capacity(control, key)
    width = key.width
    previous: bytes | None = None
    stack: list[tuple[int, int | None, int | None]] = [(key.root, None, None)]
    for _ in progress(_forever(), None, f"key {key_no} blocks"):
        if not stack:
            break
        address, level, parent = stack.pop()
        origin = "the control block" if parent is None else f"block {parent}"
        where = f"key file {name}: key {key_no}"
        if not is_block_address(control, address):
            raise MediaError(
                f"{where}: {origin} points to sector {address}, which is not a key block address",
                fix=FIX_RESTORE,
            )
        if address >= info.key_sectors:
            raise MediaError(
                f"{where}: {origin} points to sector {address:,}, outside the key "
                f"file ({info.key_sectors:,} sectors)",
                fix=FIX_RESTORE,
            )
        if address + spb > info.key_sectors:
            raise MediaError(
                f"{where}: block at sector {address:,} is truncated (the file "
                f"ends at sector {info.key_sectors:,})",
                fix=FIX_RESTORE,
            )
        slot = (address - CONTROL_SECTORS) // spb
        if seen[slot]:
            raise MediaError(
                f"{where}: block at sector {address:,} is reached twice, from "
                f"{origin} (cyclic or shared B-tree pointers)",
                fix=FIX_RESTORE,
            )
        seen[slot] = 1
        handle.seek(address * SECTOR)
        raw = handle.read(size)
        head = decode_block(raw, address=address, key_no=key_no, width=width, name=name)
        if level is None:
            if head.level >= MAX_LEVELS:
                raise MediaError(f"{where}: root block claims level {head.level}", fix=FIX_RESTORE)
            shape.levels, shape.root_keys = head.level + 1, head.count
        elif head.level != level:
            raise MediaError(
                f"{where}: block at sector {address:,} has level {head.level}, "
                f"expected {level} under {origin}",
                fix=FIX_RESTORE,
            )
        shape.blocks += 1
        shape.entries += head.count
        if address > shape.largest_address:
            shape.largest_address = address
        if head.level == 0:
            shape.capacity += leaf_cap
            shape.tree_keys += head.count
            previous = _leaf(raw, head, address, key, previous, on_leaf, where, deep)
        else:
            shape.capacity += inner_cap
            if head.count == 0:
                raise MediaError(
                    f"{where}: internal block at sector {address:,} has no children",
                    fix=FIX_RESTORE,
                )
            payload = raw[BLOCK_HEADER_SIZE : BLOCK_HEADER_SIZE + head.count * (width + 4)]
            children = children_struct(width, head.count).unpack(payload)
            stack.extend((child, head.level - 1, address) for child in reversed(children))
    return shape


def _leaf(
    raw: bytes,
    head: BlockHeader,
    address: int,
    key: KeyDescriptor,
    previous: bytes | None,
    on_leaf: Callable[[Leaf], None],
    where: str,
    deep: bool,
) -> bytes | None:
    """Check a leaf's order against its neighbours (and inside it when deep), hand it on."""
    count, width = head.count, key.width
    payload = raw[BLOCK_HEADER_SIZE : BLOCK_HEADER_SIZE + count * width]
    leaf = Leaf(address, payload, width, count)
    if count:
        first, last = payload[:width], payload[-width:]
        if deep:
            entries = leaf.entries
            in_order = all(map(operator.lt, entries, itertools.islice(entries, 1, None)))
        else:
            in_order = count == 1 or first < last
        if not in_order or (previous is not None and not previous < first):
            raise MediaError(
                f"{where}: entries out of key order in block at sector {address:,}",
                fix=FIX_RESTORE,
            )
        previous = last
    on_leaf(leaf)
    return previous


# -- bulk loading -------------------------------------------------------------
class _Spread:
    """Sizes of `blocks` blocks sharing `items` as evenly as possible."""

    def __init__(self, items: int, cap: int) -> None:
        self.blocks = max(1, math.ceil(items / cap))
        self.base, self.extra = divmod(items, self.blocks)

    def size(self, index: int) -> int:
        return self.base + (1 if index < self.extra else 0)


@dataclass
class BuiltTree:
    root: int
    levels: int
    blocks: int
    largest_address: int


class TreeBuilder:
    """Writes balanced B-trees bottom-up, one key after another, appending blocks.

    Level sizes are planned from the entry count first, so every block of a
    level holds the same number of entries give or take one (no thin right
    edge) and memory holds one pending block per level.
    """

    def __init__(
        self,
        out: BinaryIO,
        control: Control,
        first_sector: int = CONTROL_SECTORS,
        fill_percent: int = 100,
    ) -> None:
        self.out = out
        self.control = control
        self.next_sector = first_sector
        self.fill = fill_percent

    def _write(self, block: bytes) -> int:
        address = self.next_sector
        self.out.write(block)
        self.next_sector += self.control.sectors_per_block
        return address

    def build(
        self,
        key_no: int,
        count: int,
        entries: Iterator[bytes],
        progress: Progress[int] = no_progress,
    ) -> BuiltTree:
        """Consume exactly `count` sorted entries given one by one (see `build_blocks`)."""
        blocks = iter(lambda: b"".join(itertools.islice(entries, 4096)), b"")
        return self.build_blocks(key_no, count, blocks, progress)

    def build_blocks(
        self,
        key_no: int,
        count: int,
        blocks: Iterable[bytes],
        progress: Progress[int] = no_progress,
    ) -> BuiltTree:
        """Consume exactly `count` sorted entries given as blocks of whole entries back
        to back (duplicate values refused for a unique key). Leaves are sliced out of
        the blocks: no Python object per entry."""
        key = self.control.keys[key_no - 1]
        size, width = self.control.block_bytes, key.width
        caps = [
            max(2, leaf_capacity(self.control, key) * self.fill // 100),
            max(2, internal_capacity(self.control, key) * self.fill // 100),
        ]
        plan = [_Spread(count, caps[0])]
        while plan[-1].blocks > 1:
            plan.append(_Spread(plan[-1].blocks, caps[1]))
        levels = len(plan)
        pending: list[list[tuple[bytes, int]]] = [[] for _ in range(levels + 1)]
        written = [0] * (levels + 1)
        first_address, root = self.next_sector, -1
        last_key: bytes | None = None
        supply = iter(blocks)
        buffer, at = b"", 0
        for index in progress(range(plan[0].blocks), plan[0].blocks, f"key {key_no} leaves"):
            want = plan[0].size(index)
            need = want * width
            while len(buffer) - at < need:
                more = next(supply, None)
                if more is None:
                    raise MediaError(
                        f"key {key_no}: {count:,} entries announced, fewer supplied",
                        fix="report this as a bug",
                    )
                buffer, at = buffer[at:] + more, 0
            payload = buffer[at : at + need]
            at += need
            if not key.duplicates and want:
                last_key = _refuse_duplicates(key_no, payload, key.length, want, last_key)
            address = self._write(encode_block(key_no, 0, want, payload, size))
            ref = (payload[:width] if want else bytes(width), address)
            level = 1
            while True:  # push the new block's reference up as far as it completes blocks
                if level == levels:
                    root = ref[1]
                    break
                pending[level].append(ref)
                if len(pending[level]) < plan[level].size(written[level]):
                    break
                refs, pending[level] = pending[level], []
                written[level] += 1
                payload = b"".join(e + a.to_bytes(CHILD_SIZE, "little") for e, a in refs)
                ref = (
                    refs[0][0],
                    self._write(encode_block(key_no, level, len(refs), payload, size)),
                )
                level += 1
        if at < len(buffer) or any(supply):
            raise MediaError(
                f"key {key_no}: more entries supplied than the {count:,} announced",
                fix="report this as a bug",
            )
        blocks_written = sum(p.blocks for p in plan)
        return BuiltTree(
            root,
            levels,
            blocks_written,
            first_address + (blocks_written - 1) * self.control.sectors_per_block,
        )


@cache
def keys_struct(key_length: int, count: int) -> struct.Struct:
    """Pulls the `count` key values (record numbers skipped) out of a leaf's payload."""
    return struct.Struct(f"{key_length}s{RECNO_SIZE}x" * count)


def _refuse_duplicates(
    key_no: int, payload: bytes, key_length: int, count: int, last_key: bytes | None
) -> bytes:
    """Refuse two equal key values in a row (inside the leaf or across from the last
    leaf's final value); returns this leaf's final value."""
    keys = list(keys_struct(key_length, count).unpack(payload))
    if last_key is not None:
        keys.insert(0, last_key)
    if any(map(operator.eq, keys, itertools.islice(keys, 1, None))):
        index = next(i for i in range(1, len(keys)) if keys[i] == keys[i - 1])
        shift = 1 if last_key is not None else 0
        width = key_length + RECNO_SIZE
        at = (index - shift) * width
        record = recno_of(payload[at : at + width])
        raise MediaError(
            f"key {key_no} allows no duplicates, but record {record:,} repeats the value "
            f"{keys[index]!r}",
            fix="correct or delete the duplicate record, then reload",
        )
    return keys[-1]
