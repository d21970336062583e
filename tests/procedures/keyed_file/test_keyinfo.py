"""Key-information recovery's dangling check against a plain oracle.

A key value dangles when its record number names no valid record: a deleted
record, or a number at or past the keyed EOF (just past it, or far past it).
Leaves are checked in batches; batches of any size must give the same answer.
"""

from __future__ import annotations

import io

from hypothesis import given, settings
from hypothesis import strategies as st

from runner.procedures.keyed_file.btree import Leaf, TreeBuilder, walk
from runner.procedures.keyed_file.keyinfo import LeafChecker, inspect_pair
from runner.procedures.keyed_file.media import (
    CONTROL_SECTORS,
    CONTROL_SIZE,
    DATA_HEADER_SIZE,
    DELETED,
    LIVE,
    SECTOR,
    Control,
    DataHeader,
    KeyDescriptor,
    PairInfo,
)

RECORD_LENGTH = 8
KEY_LENGTH = 6

record_numbers = st.one_of(
    st.integers(0, 400),  # inside the file, or just past its end
    st.integers(2**24 - 100, 2**24 + 100),
    st.integers(2**31, 2**32 - 1),  # far past anything
)


def _pair(records: int, deleted: set[int], recnos: list[int], spb: int) -> tuple[io.BytesIO, ...]:
    slots = b"".join(
        bytes([DELETED if n in deleted else LIVE]) + bytes(RECORD_LENGTH) for n in range(records)
    )
    data = io.BytesIO(DataHeader(RECORD_LENGTH, records, records).encode() + slots)
    assert len(data.getvalue()) == DATA_HEADER_SIZE + records * (RECORD_LENGTH + 1)
    entries = sorted(b"%06d" % (i % 997) + r.to_bytes(4, "big") for i, r in enumerate(recnos))
    desc = KeyDescriptor(0, KEY_LENGTH, True, 0)
    control = Control(spb, RECORD_LENGTH, True, 0, 0, "", (desc,))
    key = io.BytesIO()
    key.write(bytes(CONTROL_SIZE))
    built = TreeBuilder(key, control, CONTROL_SECTORS, 100).build(1, len(entries), iter(entries))
    final = control.with_(
        keys=(KeyDescriptor(0, KEY_LENGTH, True, built.root),),
        key_eof=CONTROL_SECTORS + built.blocks * spb,
    )
    key.seek(0)
    key.write(final.encode())
    return data, key


@settings(max_examples=80, deadline=None)
@given(
    st.integers(0, 300),
    st.sets(st.integers(0, 299), max_size=60),
    st.lists(record_numbers, max_size=250),
    st.sampled_from([1, 2]),
    st.sampled_from([1, 50, LeafChecker.BATCH_ENTRIES]),
)
def test_dangling_values_are_exactly_those_naming_no_valid_record(
    records: int, deleted: set[int], recnos: list[int], spb: int, batch: int
) -> None:
    data, key = _pair(records, deleted, recnos, spb)
    header = DataHeader(RECORD_LENGTH, records, records)
    control = Control.decode(key.getvalue()[:CONTROL_SIZE], "k")
    info = PairInfo("d", "k", header, control, len(data.getvalue()), len(key.getvalue()))
    patched = io.BytesIO(key.getvalue())

    def patch(address: int, block: bytes) -> None:
        patched.seek(address * SECTOR)
        patched.write(block)

    default = LeafChecker.BATCH_ENTRIES
    LeafChecker.BATCH_ENTRIES = batch  # a flush after every leaf, after a few, at the end
    try:
        findings = inspect_pair(data, key, info, patch=patch)
    finally:
        LeafChecker.BATCH_ENTRIES = default

    def valid(n: int) -> bool:
        return n < records and n not in deleted

    kept = sorted(r for r in recnos if valid(r))
    assert findings.keys[0].dangling == len(recnos) - len(kept)
    assert findings.keys[0].keys_after == len(kept)
    leaves: list[Leaf] = []
    walk(patched, info, 1, leaves.append)
    assert sorted(r for leaf in leaves for r in leaf.recnos) == kept
