"""Key-information recovery: measure the damage, and (for repair) fix it while copying.

`inspect_pair` is the whole analysis of the domain note's repair, in its
order: FS EOF against keyed EOF, per-key B-tree statistics, key-file EOF
against the largest key block, dangling key values per key, key counts against
each other and the valid records. Given a `patch` callback it also hands over
the rewritten leaf blocks (dangling values removed); verify passes none and so
changes nothing.

Named for the domain's "key-information recovery" (what repair does), not
`analysis`/`analyse` (the pools procedure's analyse.py means something else)
nor `damage` (the world generator's --damage kinds are what a crash leaves,
not what is found).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, BinaryIO

import numpy as np

from runner.procedures.keyed_file.btree import Leaf, walk
from runner.procedures.keyed_file.media import RECNO_SIZE, Control, PairInfo, encode_block
from runner.procedures.keyed_file.records import Progress, no_progress, valid_map

Patch = Callable[[int, bytes], None]


@dataclass
class KeyFinding:
    key_no: int
    position: int
    length: int
    duplicates: bool
    levels: int
    blocks: int
    sectors_per_block: int
    root_keys: int
    tree_keys: int  # before deleting dangling values
    utilisation: float
    largest_address: int
    dangling: int
    keys_after: int
    missing: int  # valid records without a value in this key


@dataclass
class Findings:
    """Everything the verify and repair reports print; JSON-able for checkpoints."""

    data_file: str
    key_file: str
    record_length: int
    data_size: int
    key_size: int
    physical_records: int
    fs_eof: int
    keyed_eof: int
    valid_records: int
    deleted_records: int
    sectors_per_block: int
    key_eof: int
    key_eof_after: int
    largest_block_end: int
    crashed: bool
    last_reset: str | None
    last_reset_user: str
    keys: list[KeyFinding] = field(default_factory=list)

    @property
    def fs_eof_reset(self) -> bool:
        return self.fs_eof < self.keyed_eof

    @property
    def key_eof_reset(self) -> bool:
        return self.key_eof_after != self.key_eof

    @property
    def dangling(self) -> int:
        return sum(k.dangling for k in self.keys)

    @property
    def missing_keys(self) -> int:
        return sum(k.missing for k in self.keys)

    @property
    def counts_agree(self) -> bool:
        return all(k.keys_after == self.valid_records for k in self.keys)

    @property
    def reload_needed(self) -> bool:
        return not self.counts_agree

    @property
    def damaged(self) -> bool:
        return self.fs_eof_reset or self.key_eof_reset or self.dangling > 0 or self.reload_needed

    def to_state(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Findings:
        keys = [KeyFinding(**k) for k in state["keys"]]
        return cls(**{**state, "keys": keys})

    def view(self) -> dict[str, Any]:
        """The findings plus derived figures, for report templates and outputs."""
        return {
            **asdict(self),
            "fs_eof_reset": self.fs_eof_reset,
            "key_eof_reset": self.key_eof_reset,
            "dangling": self.dangling,
            "missing_keys": self.missing_keys,
            "counts_agree": self.counts_agree,
            "reload_needed": self.reload_needed,
            "damaged": self.damaged,
        }


def reset_stamp(seconds: int) -> str | None:
    return datetime.fromtimestamp(seconds, UTC).isoformat() if seconds else None


def inspect_pair(
    data: BinaryIO,
    key: BinaryIO,
    info: PairInfo,
    *,
    patch: Patch | None = None,
    progress: Progress[int] = no_progress,
    deep: bool = False,
) -> Findings:
    """Analyse a pair (read only); with `patch`, emit leaf blocks rewritten without
    their dangling values. `deep` also checks key order inside every leaf."""
    header, control = info.header, info.control
    valid = valid_map(data, header, info.data_name, progress)
    valid_records = valid.count(1)
    keyed_eof = header.keyed_eof
    size = control.block_bytes
    keys = []
    for key_no, desc in enumerate(control.keys, start=1):
        checker = LeafChecker(valid, key_no, desc.length, size, patch)
        shape = walk(key, info, key_no, checker, progress, deep=deep)
        checker.flush()
        dangling = checker.dangling
        after = shape.tree_keys - dangling
        keys.append(
            KeyFinding(
                key_no=key_no,
                position=desc.position,
                length=desc.length,
                duplicates=desc.duplicates,
                levels=shape.levels,
                blocks=shape.blocks,
                sectors_per_block=control.sectors_per_block,
                root_keys=shape.root_keys,
                tree_keys=shape.tree_keys,
                utilisation=shape.utilisation,
                largest_address=shape.largest_address,
                dangling=dangling,
                keys_after=after,
                missing=max(0, valid_records - after),
            )
        )
    largest_end = max(k.largest_address for k in keys) + control.sectors_per_block
    return Findings(
        data_file=info.data_name,
        key_file=info.key_name,
        record_length=header.record_length,
        data_size=info.data_size,
        key_size=info.key_size,
        physical_records=info.physical_records,
        fs_eof=header.fs_eof,
        keyed_eof=keyed_eof,
        valid_records=valid_records,
        deleted_records=keyed_eof - valid_records,
        sectors_per_block=control.sectors_per_block,
        key_eof=control.key_eof,
        key_eof_after=max(control.key_eof, largest_end),
        largest_block_end=largest_end,
        crashed=control.crashed,
        last_reset=reset_stamp(control.last_reset),
        last_reset_user=control.last_reset_user,
        keys=keys,
    )


class LeafChecker:
    """Checks leaves' record numbers against the valid map, many leaves at a time.

    The walker hands leaves over one by one (call the checker with each, then
    `flush` once the walk is done). Their payloads are kept until about
    BATCH_ENTRIES entries have come, and then every record number of the batch
    is looked up in the map by one numpy gather: no Python object per entry. A
    value dangles when its record number names no valid record: a deleted one,
    or one at or past the keyed EOF (the map's end). With `patch`, a leaf holding
    dangling values is handed on rewritten without them.
    """

    BATCH_ENTRIES = 1 << 16

    def __init__(
        self, valid: bytearray, key_no: int, key_length: int, block_bytes: int, patch: Patch | None
    ) -> None:
        # one byte past the end, never valid, stands for every number at or past it
        self.valid = np.concatenate([np.frombuffer(valid, np.uint8), np.zeros(1, np.uint8)])
        self.key_no, self.block_bytes, self.patch = key_no, block_bytes, patch
        self.width = key_length + RECNO_SIZE
        self.layout = np.dtype([("key", f"V{key_length}"), ("recno", ">u4")])
        self.dangling = 0  # values naming no valid record
        self.valid_values = 0  # values naming a valid record
        self._addresses: list[int] = []
        self._payloads: list[bytes] = []
        self._counts: list[int] = []
        self._pending = 0

    def __call__(self, leaf: Leaf) -> None:
        if leaf.count:
            self._addresses.append(leaf.address)
            self._payloads.append(leaf.payload)
            self._counts.append(leaf.count)
            self._pending += leaf.count
            if self._pending >= self.BATCH_ENTRIES:
                self.flush()

    def flush(self) -> None:
        if not self._payloads:
            return
        blob = b"".join(self._payloads)
        numbers = np.frombuffer(blob, self.layout)["recno"].astype(np.intp)
        good = self.valid[np.minimum(numbers, len(self.valid) - 1)].astype(bool)
        counts = np.asarray(self._counts)
        starts = np.cumsum(counts) - counts
        bad_per_leaf = np.add.reduceat(~good, starts, dtype=np.int64)
        bad = int(bad_per_leaf.sum())
        self.dangling += bad
        self.valid_values += len(numbers) - bad
        if self.patch is not None and bad:
            entries = np.frombuffer(blob, f"V{self.width}")
            for i in np.flatnonzero(bad_per_leaf).tolist():
                start = int(starts[i])
                end = start + self._counts[i]
                kept = entries[start:end][good[start:end]]
                block = encode_block(self.key_no, 0, len(kept), kept.tobytes(), self.block_bytes)
                self.patch(self._addresses[i], block)
        self._addresses, self._payloads, self._counts = [], [], []
        self._pending = 0


def repaired_control(control: Control, findings: Findings, now: datetime, user: str) -> Control:
    """The control block after repair: EOF reset, crash flag off, who and when."""
    return control.with_(
        crashed=False,
        key_eof=findings.key_eof_after,
        last_reset=int(now.timestamp()),
        last_reset_user=user,
    )
