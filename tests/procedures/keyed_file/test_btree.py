"""Bulk loading and walking B-trees; the bounded-memory sorter."""

from __future__ import annotations

import io
import math
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.errors import MediaError
from runner.procedures.keyed_file import sorter as sorter_module
from runner.procedures.keyed_file.btree import Leaf, TreeBuilder, walk
from runner.procedures.keyed_file.media import (
    CONTROL_SECTORS,
    CONTROL_SIZE,
    SECTOR,
    Control,
    DataHeader,
    KeyDescriptor,
    PairInfo,
    leaf_capacity,
)
from runner.procedures.keyed_file.sorter import EntrySorter, entry_cost


def _build(
    entries: list[bytes], length: int, spb: int, fill: int, duplicates: bool = True
) -> tuple[io.BytesIO, PairInfo, int]:
    control = Control(spb, 64, False, 0, 0, "", (KeyDescriptor(0, length, duplicates, 0),))
    out = io.BytesIO()
    out.write(bytes(CONTROL_SIZE))
    built = TreeBuilder(out, control, CONTROL_SECTORS, fill).build(1, len(entries), iter(entries))
    final = control.with_(
        keys=(KeyDescriptor(0, length, duplicates, built.root),),
        key_eof=CONTROL_SECTORS + built.blocks * spb,
    )
    out.seek(0)
    out.write(final.encode())
    size = len(out.getvalue())
    info = PairInfo("d", "k", DataHeader(64, 0, 0), final, 512, size)
    return out, info, built.levels


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 3000),
    st.sampled_from([1, 2, 8]),
    st.integers(50, 100),
    st.integers(1, 40),
    st.integers(0, 2**32),
)
def test_bulk_load_then_walk_gives_back_every_entry_in_order(
    count: int, spb: int, fill: int, length: int, seed: int
) -> None:
    # key bytes from a seeded generator: drawing up to 120 kB of them from hypothesis
    # itself trips its data-too-large health check on some seeds
    rnd = random.Random(seed)
    entries = sorted(rnd.randbytes(length) + n.to_bytes(4, "big") for n in range(count))
    out, info, levels = _build(entries, length, spb, fill)
    leaves: list[Leaf] = []
    shape = walk(out, info, 1, leaves.append)
    assert [e for leaf in leaves for e in leaf.entries] == entries
    assert [r for leaf in leaves for r in leaf.recnos] == [
        int.from_bytes(e[-4:], "big") for e in entries
    ]
    assert shape.levels == levels and shape.tree_keys == count
    sizes = [len(leaf.entries) for leaf in leaves]
    assert max(sizes) - min(sizes) <= 1, "leaves are not evenly filled"
    cap = max(2, leaf_capacity(info.control, info.control.keys[0]) * fill // 100)
    assert len(leaves) == max(1, math.ceil(count / cap))
    assert shape.largest_address == CONTROL_SECTORS + (shape.blocks - 1) * spb


def test_empty_tree_is_one_empty_leaf() -> None:
    out, info, levels = _build([], 10, 8, 90)
    leaves: list[Leaf] = []
    shape = walk(out, info, 1, leaves.append)
    assert levels == 1 and shape.blocks == 1 and shape.tree_keys == 0
    assert len(leaves) == 1 and leaves[0].entries == ()


def test_unique_key_refuses_duplicates_inside_and_across_blocks() -> None:
    unique = [b"%010d" % i + i.to_bytes(4, "big") for i in range(120)]
    _build(unique, 10, 1, 100, duplicates=False)
    for twin in range(0, 80):  # leaves hold 35: some twins straddle a block boundary
        entries = sorted([*unique, b"%010d" % twin + (999).to_bytes(4, "big")])
        with pytest.raises(MediaError, match="allows no duplicates"):
            _build(entries, 10, 1, 100, duplicates=False)
        _build(entries, 10, 1, 100, duplicates=True)  # fine where duplicates are allowed


def test_walk_refuses_out_of_order_entries() -> None:
    entries = [bytes([i]) * 6 + i.to_bytes(4, "big") for i in reversed(range(200))]
    out, info, _ = _build(entries, 6, 1, 100)  # not sorted: built as given
    with pytest.raises(MediaError, match="out of key order"):
        walk(out, info, 1, lambda leaf: None)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.binary(min_size=6, max_size=6), max_size=3000), st.integers(1, 40))
def test_sorter_matches_sorted_in_memory_and_in_runs(entries: list[bytes], runs_of: int) -> None:
    directory = Path(__import__("tempfile").mkdtemp())
    try:
        for budget in (1 << 30, runs_of * 1024 * entry_cost(6)):
            sorter = EntrySorter(6, budget, directory, "k")
            for start in range(0, len(entries), 100):
                sorter.add(b"".join(entries[start : start + 100]))
            assert list(sorter.sorted_entries()) == sorted(entries)
        assert list(directory.iterdir()) == [], "temporary runs left behind"
    finally:
        __import__("shutil").rmtree(directory)


def test_sorter_cascades_when_there_are_many_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sorter_module, "MAX_FAN_IN", 3)
    rnd = random.Random(4)
    entries = [rnd.randbytes(8) for _ in range(20_000)]
    sorter = EntrySorter(8, 1024 * entry_cost(8), tmp_path, "k")  # 1,024 entries a run
    sorter.add(b"".join(entries))
    assert list(sorter.sorted_entries()) == sorted(entries)
    assert sorter.runs == 20 and list(tmp_path.iterdir()) == []


def test_block_addresses_are_sectors() -> None:
    out, info, _ = _build([bytes(10) + n.to_bytes(4, "big") for n in range(1000)], 10, 2, 100)
    assert len(out.getvalue()) % SECTOR == 0
    assert info.key_sectors * SECTOR == len(out.getvalue())


def test_deep_walk_finds_disorder_inside_a_leaf() -> None:
    entries = [b"%06d" % i + i.to_bytes(4, "big") for i in range(30)]
    entries[10], entries[11] = entries[11], entries[10]  # first and last still in order
    out, info, _ = _build(entries, 6, 1, 100)
    walk(out, info, 1, lambda leaf: None)  # the cheap check only compares block ends
    with pytest.raises(MediaError, match="out of key order"):
        walk(out, info, 1, lambda leaf: None, deep=True)
