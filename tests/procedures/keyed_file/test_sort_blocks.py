"""The reload's block-wise sort and tree build: the sorted stream comes back in
blocks of whole entries, the merge of spilled runs works a block at a time, and
the builder slices leaves out of blocks cut anywhere; none of it may change a
byte of the output, and a reload that spills writes the very pair one that
sorts in memory writes."""

from __future__ import annotations

import io
import random
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.errors import MediaError
from runner.procedures.keyed_file import sorter as sorter_module
from runner.procedures.keyed_file.btree import TreeBuilder
from runner.procedures.keyed_file.bulkload import reload_pair
from runner.procedures.keyed_file.media import (
    CONTROL_SECTORS,
    CONTROL_SIZE,
    DATA_HEADER_SIZE,
    Control,
    DataHeader,
    KeyDescriptor,
)
from runner.procedures.keyed_file.records import SPLIT_BATCH, split
from runner.procedures.keyed_file.sorter import EntrySorter, entry_cost
from tests.procedures.keyed_file.conftest import SiteMaker


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 20), st.integers(0, 3 * SPLIT_BATCH), st.integers(0, 19))
def test_split_cuts_like_slicing_in_batches_and_drops_a_partial_tail(
    width: int, count: int, extra: int
) -> None:
    blob = random.Random(count).randbytes(count * width + extra % width)
    pieces = split(blob, width)
    assert pieces == [blob[i : i + width] for i in range(0, count * width, width)]
    assert all(type(piece) is bytes for piece in pieces)


def _control(length: int, duplicates: bool = True) -> Control:
    return Control(1, 64, False, 0, 0, "", (KeyDescriptor(0, length, duplicates, 0),))


def _tree(control: Control, count: int, blocks: list[bytes]) -> bytes:
    out = io.BytesIO()
    out.write(bytes(CONTROL_SIZE))
    built = TreeBuilder(out, control, CONTROL_SECTORS, 90).build_blocks(1, count, blocks)
    return out.getvalue() + built.root.to_bytes(4, "little")


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2000), st.integers(1, 12), st.randoms(use_true_random=False))
def test_blocks_cut_anywhere_build_the_tree_one_blob_builds(
    count: int, length: int, rnd: random.Random
) -> None:
    width = length + 4
    entries = sorted(rnd.randbytes(length) + n.to_bytes(4, "big") for n in range(count))
    blob = b"".join(entries)
    cuts = sorted(rnd.randrange(count + 1) * width for _ in range(rnd.randrange(6)))
    pieces = [blob[a:b] for a, b in zip([0, *cuts], [*cuts, len(blob)], strict=True)]
    control = _control(length)
    assert b"".join(pieces) == blob  # empty pieces included: the builder must skip them
    assert _tree(control, count, pieces) == _tree(control, count, [blob])
    one_by_one = io.BytesIO()
    one_by_one.write(bytes(CONTROL_SIZE))
    built = TreeBuilder(one_by_one, control, CONTROL_SECTORS, 90).build(1, count, iter(entries))
    assert one_by_one.getvalue() + built.root.to_bytes(4, "little") == _tree(control, count, [blob])


def test_builder_refuses_a_stream_shorter_or_longer_than_announced() -> None:
    blob = b"".join(b"%06d" % i + i.to_bytes(4, "big") for i in range(100))
    with pytest.raises(MediaError, match="100 entries announced, fewer supplied"):
        _tree(_control(6), 100, [blob[:-10]])
    with pytest.raises(MediaError, match="more entries supplied than the 99 announced"):
        _tree(_control(6), 99, [blob])
    with pytest.raises(MediaError, match="more entries supplied than the 100 announced"):
        _tree(_control(6), 100, [blob, bytes(10)])


@pytest.mark.parametrize("twin", [0, 17, 42, 43, 44, 99])  # 1-sector leaves: 44 at 90%
def test_a_duplicate_in_a_unique_key_names_the_record_that_repeats_it(twin: int) -> None:
    entries = sorted(
        [b"%06d" % i + i.to_bytes(4, "big") for i in range(100)]
        + [b"%06d" % twin + (777).to_bytes(4, "big")]
    )
    with pytest.raises(MediaError, match=f"record 777 repeats the value b'{twin:06d}'"):
        _tree(_control(6, duplicates=False), 101, [b"".join(entries)])


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 6000), st.integers(2, 4), st.randoms(use_true_random=False))
def test_merged_blocks_keep_every_entry_even_when_runs_share_values(
    count: int, fan_in: int, rnd: random.Random
) -> None:
    """Equal entries in several runs sit exactly on the merge's bound: none may be
    lost or doubled, and every block holds whole entries."""
    values = [b"aaaa", b"aaab", b"abab", b"bbbb", b"\xff\x00\xff\x00", rnd.randbytes(4)]
    entries = [rnd.choice(values) for _ in range(count)]
    directory = Path(tempfile.mkdtemp())
    old_fan_in = sorter_module.MAX_FAN_IN
    sorter_module.MAX_FAN_IN = fan_in  # a cascade too once there are more runs than this
    try:
        sorter = EntrySorter(4, 1024 * entry_cost(4), directory, "k")  # runs of 1,024
        sorter.add(b"".join(entries))
        blocks = list(sorter.sorted_blocks())
        assert sorter.runs == (0 if count <= 1024 else -(-count // 1024))
        assert all(len(block) % 4 == 0 for block in blocks)
        assert b"".join(blocks) == b"".join(sorted(entries))
        assert list(directory.iterdir()) == [], "temporary runs left behind"
    finally:
        sorter_module.MAX_FAN_IN = old_fan_in
        shutil.rmtree(directory)


def test_in_memory_sort_hands_over_blocks_in_ascending_order(tmp_path: Path) -> None:
    rnd = random.Random(3)
    entries = [rnd.randbytes(6) for _ in range(3 * sorter_module.OUT_BLOCK + 5)]
    sorter = EntrySorter(6, 1 << 30, tmp_path, "k")
    sorter.add(b"".join(entries))
    blocks = list(sorter.sorted_blocks())
    assert sorter.runs == 0 and len(blocks) == 4
    assert b"".join(blocks) == b"".join(sorted(entries))


def _reload(site: Path, out: Path, memory_bytes: int) -> list[int]:
    data_path, key_path = site / "files" / "customers.dat", site / "files" / "customers.key"
    out.mkdir()
    with data_path.open("rb") as data, key_path.open("rb") as key:
        header = DataHeader.decode(data.read(DATA_HEADER_SIZE), "customers.dat")
        control = Control.decode(key.read(CONTROL_SIZE), "customers.key")
        with (out / "d").open("wb") as dout, (out / "k").open("wb") as kout:
            result = reload_pair(
                data,
                header,
                control,
                "customers.dat",
                dout,
                kout,
                now=datetime(2026, 1, 2, tzinfo=UTC),
                user="test",
                fill_percent=90,
                memory_bytes=memory_bytes,
                temp_dir=str(out),
            )
    return [k.sort_runs for k in result.keys]


def test_a_reload_that_spills_writes_the_pair_one_in_memory_writes(
    make_site: SiteMaker, tmp_path: Path
) -> None:
    site, _ = make_site(records=12_000, keys=3, damage=())
    assert _reload(site, tmp_path / "memory", 1 << 30) == [0, 0, 0]
    runs = _reload(site, tmp_path / "spilled", 1024 * entry_cost(4))
    assert min(runs) >= 10, runs  # every key cut into runs of at most 1,024 entries
    for name in ("d", "k"):
        assert (tmp_path / "spilled" / name).read_bytes() == (
            tmp_path / "memory" / name
        ).read_bytes()
    assert sorted(p.name for p in (tmp_path / "spilled").iterdir()) == ["d", "k"]


@pytest.mark.parametrize("runs_of", [None, 1024, 2048])
def test_sorting_duplicates_in_memory_or_in_runs_gives_the_plain_sort(
    tmp_path: Path, runs_of: int | None
) -> None:
    """Many equal entries, and entries that differ only in trailing zero bytes
    (which a numpy bytes scalar would drop), come back as a plain sort puts them."""
    rnd = random.Random(runs_of)
    values = [rnd.randbytes(3) + bytes(3) for _ in range(200)] + [bytes(6), b"\0\0\0\0\0\1"]
    entries = [rnd.choice(values) for _ in range(5000)]
    budget = 1 << 30 if runs_of is None else runs_of * entry_cost(6)
    sorter = EntrySorter(6, budget, tmp_path, "k")
    sorter.add(b"".join(entries))
    assert b"".join(sorter.sorted_blocks()) == b"".join(sorted(entries))
    assert sorter.runs == (0 if runs_of is None else -(-5000 // max(1024, runs_of)))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("at_most", [5000, 4999, 100])
def test_entries_kept_in_memory_as_they_come_sort_as_spilled_ones_do(
    tmp_path: Path, at_most: int
) -> None:
    """Told how many entries can come, the sorter keeps them in memory and
    writes no file; if more come after all, it spills them and still sorts
    them all."""
    rnd = random.Random(at_most)
    entries = [rnd.randbytes(5) + bytes(1) for _ in range(5000)]
    sorter = EntrySorter(6, 1 << 30, tmp_path, "k", at_most=at_most)
    for start in range(0, len(entries), 700):
        sorter.add(b"".join(entries[start : start + 700]))
        came = min(start + 700, len(entries))
        spilled = list(tmp_path.iterdir())
        assert spilled == ([] if came <= at_most else [tmp_path / "k.spill"])
    assert b"".join(sorter.sorted_blocks()) == b"".join(sorted(entries))
    assert sorter.count == 5000 and sorter.runs == 0
    assert list(tmp_path.iterdir()) == []
