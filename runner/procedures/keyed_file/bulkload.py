"""Reload: copy the valid records into a brand-new pair with fresh, balanced B-trees.

One sequential pass over the data file writes the new data file (deleted
records left behind, the rest renumbered densely) and feeds every key's
entries to its own `EntrySorter`; then each key's B-tree is bulk-loaded
bottom-up from its sorted stream. Memory: one chunk of records, plus each
sort's budget (`memory_bytes`, one key at a time), plus one pending block per
tree level.

Named for the bulk load, not `reload`: the world generator builds its key
files with the same `KeyFeeder` and `build_key_file`, and actions/reload.py
is the playbook action that calls `reload_pair`.
"""

from __future__ import annotations

import operator
import re
import struct
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from runner.procedures.keyed_file.btree import TreeBuilder
from runner.procedures.keyed_file.media import (
    CONTROL_SECTORS,
    CONTROL_SIZE,
    DATA_HEADER_SIZE,
    RECNO_SIZE,
    Control,
    DataHeader,
    KeyDescriptor,
)
from runner.procedures.keyed_file.records import (
    Progress,
    check_marks,
    no_progress,
    record_chunks,
)
from runner.procedures.keyed_file.sorter import EntrySorter, scratch_dir

DELETED_BYTE = b"\x01"
_DELETED_RUNS = re.compile(re.escape(DELETED_BYTE) + b"+")


@dataclass
class KeyLoad:
    key_no: int
    entries: int
    levels: int
    blocks: int
    root: int
    largest_address: int
    sort_runs: int  # 0: sorted in memory; else sorted runs merged from temp files


@dataclass
class ReloadResult:
    records_read: int
    records_loaded: int
    deleted_dropped: int
    sectors_per_block: int
    key_eof: int
    keys: list[KeyLoad] = field(default_factory=list)

    def to_state(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ReloadResult:
        return cls(**{**state, "keys": [KeyLoad(**k) for k in state["keys"]]})


class KeyFeeder:
    """Turns chunks of live records into sorted-entry streams, one per key."""

    def __init__(
        self,
        keys: Iterable[KeyDescriptor],
        memory_bytes: int,
        directory: Path,
        *,
        at_most: int = 0,
    ) -> None:
        """`at_most`: how many records can come at most (0: not known). When every
        key's entries for that many fit the memory budget together, they are kept
        in memory as they come instead of being spilled to files and read back."""
        self.keys = tuple(keys)
        together = at_most * sum(k.width for k in self.keys)
        keep = at_most if 0 < together <= memory_bytes else 0
        self.sorters = [
            EntrySorter(k.width, memory_bytes, directory, f"key{i + 1}", at_most=keep)
            for i, k in enumerate(self.keys)
        ]
        self.getters = [
            operator.itemgetter(slice(1 + k.position, 1 + k.position + k.length)) for k in self.keys
        ]

    def add(self, records: list[bytes], numbers: list[bytes]) -> None:
        """`records` are whole slots (mark byte + payload); `numbers` their record numbers
        (4 bytes big-endian each, see `recno_bytes`)."""
        for sorter, getter in zip(self.sorters, self.getters, strict=True):
            sorter.add(b"".join(map(operator.add, map(getter, records), numbers)))

    def add_slots(self, blob: bytes, slot: int, first: int) -> None:
        """Entries for live record slots given back to back in `blob`, numbered from
        `first`. Each key's entries are built column by column with strided slice
        assignment (C speed, no Python object per record): byte j of every key value
        is one stride of the blob, byte k of every record number one of the packed
        numbers. Same bytes as `add` with `split` and `recno_bytes`."""
        count = len(blob) // slot
        if not count:
            return
        numbers = struct.pack(f">{count}I", *range(first, first + count))
        for sorter, key in zip(self.sorters, self.keys, strict=True):
            width = key.width
            entries = bytearray(count * width)
            for j in range(key.length):
                entries[j::width] = blob[1 + key.position + j :: slot]
            for k in range(RECNO_SIZE):
                entries[key.length + k :: width] = numbers[k::RECNO_SIZE]
            sorter.add(entries)

    def add_key(self, key_index: int, records: list[bytes], numbers: list[bytes]) -> None:
        """Entries for one key only (the world generator's missing-key damage)."""
        getter = self.getters[key_index]
        self.sorters[key_index].add(b"".join(map(operator.add, map(getter, records), numbers)))

    def close(self) -> None:
        for sorter in self.sorters:
            sorter.close()


def _live_slots(blob: bytes, marks: bytes, slot: int) -> bytes:
    """The chunk without its deleted records: the live runs between runs of deleted
    marks, joined (one slice per run, not one object per record)."""
    parts, start = [], 0
    for run in _DELETED_RUNS.finditer(marks):
        parts.append(blob[start * slot : run.start() * slot])
        start = run.end()
    parts.append(blob[start * slot :])
    return b"".join(parts)


def build_key_file(
    out: BinaryIO,
    control: Control,
    feeder: KeyFeeder,
    *,
    fill_percent: int,
    order: Iterable[int] | None = None,
    progress: Progress[int] = no_progress,
) -> tuple[Control, list[KeyLoad]]:
    """Write control block + every key's tree; returns the final control block.

    `order` (1-based key numbers) is the order trees are laid out in the file.
    """
    out.write(bytes(CONTROL_SIZE))  # placeholder, rewritten once roots are known
    builder = TreeBuilder(out, control, CONTROL_SECTORS, fill_percent)
    roots: dict[int, KeyLoad] = {}
    for key_no in order or range(1, len(control.keys) + 1):
        sorter = feeder.sorters[key_no - 1]
        stream = sorter.sorted_blocks(progress, f"key {key_no} sort ({sorter.count:,} values)")
        built = builder.build_blocks(key_no, sorter.count, stream, progress)
        roots[key_no] = KeyLoad(
            key_no,
            sorter.count,
            built.levels,
            built.blocks,
            built.root,
            built.largest_address,
            sorter.runs,
        )
    keys = tuple(
        KeyDescriptor(k.position, k.length, k.duplicates, roots[i + 1].root)
        for i, k in enumerate(control.keys)
    )
    final = control.with_(keys=keys, key_eof=builder.next_sector)
    out.seek(0)
    out.write(final.encode())
    out.seek(0, 2)
    return final, [roots[i] for i in sorted(roots)]


def reload_pair(
    data: BinaryIO,
    header: DataHeader,
    control: Control,
    name: str,
    data_out: BinaryIO,
    key_out: BinaryIO,
    *,
    now: datetime,
    user: str,
    fill_percent: int,
    memory_bytes: int,
    sectors_per_block: int | None = None,
    temp_dir: str | None = None,
    progress: Progress[int] = no_progress,
) -> ReloadResult:
    """Write the new data file to `data_out` and the new key file to `key_out`."""
    slot = header.slot
    loaded = 0
    new_control = control.with_(
        sectors_per_block=sectors_per_block or control.sectors_per_block,
        crashed=False,
        last_reset=int(now.timestamp()),
        last_reset_user=user,
    )
    with scratch_dir(temp_dir) as scratch:
        feeder = KeyFeeder(control.keys, memory_bytes, scratch, at_most=header.keyed_eof)
        try:
            data_out.write(bytes(DATA_HEADER_SIZE))
            for first, blob in record_chunks(
                data, header, header.keyed_eof, progress, "record chunks read"
            ):
                marks = blob[0::slot]
                check_marks(marks, first, name)
                if DELETED_BYTE in marks:
                    blob = _live_slots(blob, marks, slot)
                data_out.write(blob)
                feeder.add_slots(blob, slot, loaded)
                loaded += len(blob) // slot
            data_out.seek(0)
            data_out.write(DataHeader(header.record_length, loaded, loaded).encode())
            data_out.seek(0, 2)
            final, keys = build_key_file(
                key_out, new_control, feeder, fill_percent=fill_percent, progress=progress
            )
        finally:
            feeder.close()
    return ReloadResult(
        header.keyed_eof,
        loaded,
        header.keyed_eof - loaded,
        final.sectors_per_block,
        final.key_eof,
        keys,
    )
