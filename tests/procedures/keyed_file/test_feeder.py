"""The reload's chunk-at-a-time helpers equal their per-record versions: KeyFeeder.add_slots
gives exactly the entries of KeyFeeder.add, _live_slots exactly the live records."""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from runner.procedures.keyed_file.bulkload import KeyFeeder, _live_slots
from runner.procedures.keyed_file.media import KeyDescriptor
from runner.procedures.keyed_file.records import recno_bytes, split


@st.composite
def layouts(draw: st.DrawFn) -> tuple[int, list[KeyDescriptor], bytes, int]:
    length = draw(st.integers(1, 40))
    keys = []
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, length - 1))
        keys.append(KeyDescriptor(position, draw(st.integers(1, length - position)), True, 0))
    count = draw(st.integers(0, 60))
    payload = draw(st.binary(min_size=count * length, max_size=count * length))
    slots = b"".join(b"\0" + payload[i * length : (i + 1) * length] for i in range(count))
    return length + 1, keys, slots, draw(st.integers(0, 2**32 - 1 - count))


def _entries(feeder: KeyFeeder) -> list[list[bytes]]:
    out = [list(sorter.sorted_entries()) for sorter in feeder.sorters]
    feeder.close()
    return out


@settings(max_examples=150, deadline=None)
@given(layouts())
def test_add_slots_builds_the_same_entries_as_add(
    layout: tuple[int, list[KeyDescriptor], bytes, int],
) -> None:
    slot, keys, blob, first = layout
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        by_record = KeyFeeder(keys, 1 << 20, Path(a))
        by_column = KeyFeeder(keys, 1 << 20, Path(b))
        records = split(blob, slot)
        if records:
            by_record.add(records, recno_bytes(first, len(records)))
        by_column.add_slots(blob, slot, first)
        assert _entries(by_column) == _entries(by_record)


@given(st.integers(1, 9), st.lists(st.booleans(), max_size=80), st.randoms(use_true_random=False))
def test_live_slots_drops_exactly_the_deleted_records(
    payload: int, deleted: list[bool], rnd: random.Random
) -> None:
    slot = payload + 1
    records = [bytes([int(gone)]) + rnd.randbytes(payload) for gone in deleted]
    blob = b"".join(records)
    live = b"".join(r for r, gone in zip(records, deleted, strict=True) if not gone)
    assert _live_slots(blob, blob[0::slot], slot) == live
