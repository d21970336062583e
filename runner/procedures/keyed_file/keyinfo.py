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

import itertools
import operator
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, BinaryIO

from runner.procedures.keyed_file.btree import Leaf, leaf_block, walk
from runner.procedures.keyed_file.media import Control, PairInfo
from runner.procedures.keyed_file.records import Progress, no_progress, valid_map

Patch = Callable[[int, bytes], None]
EXTEND_LIMIT = 1 << 24  # pad the valid map up to 16 MB past the keyed EOF


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
        dangling = 0

        def on_leaf(leaf: Leaf, key_no: int = key_no) -> None:
            nonlocal dangling
            recnos = leaf.recnos
            if not recnos:
                return
            try:  # one C-level gather; a number past the map's end raises
                flags = operator.itemgetter(*recnos)(valid)
                if len(recnos) == 1:
                    flags = (flags,)
            except IndexError:
                flags = _flags_past_end(valid, recnos, keyed_eof)
            if 0 not in flags:
                return
            keep = list(itertools.compress(leaf.entries, flags))
            dangling += len(recnos) - len(keep)
            if patch is not None:
                patch(leaf.address, leaf_block(key_no, keep, size))

        shape = walk(key, info, key_no, on_leaf, progress, deep=deep)
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


def _flags_past_end(valid: bytearray, recnos: tuple[int, ...], keyed_eof: int) -> tuple[int, ...]:
    """Validity flags for a leaf naming a record past the map's end (there is no
    record there: the value dangles). The map is padded with "invalid" up to
    EXTEND_LIMIT bytes past its end, so later leaves that point just past the
    keyed EOF take the fast gather again; a number beyond that is answered alone."""
    top = max(recnos)
    if top <= len(valid) + EXTEND_LIMIT:
        valid.extend(bytes(top + 1 - len(valid)))
        return tuple(map(valid.__getitem__, recnos))
    return tuple(int(r < keyed_eof and valid[r]) for r in recnos)


def repaired_control(control: Control, findings: Findings, now: datetime, user: str) -> Control:
    """The control block after repair: EOF reset, crash flag off, who and when."""
    return control.with_(
        crashed=False,
        key_eof=findings.key_eof_after,
        last_reset=int(now.timestamp()),
        last_reset_user=user,
    )
