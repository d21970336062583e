"""The volume file format: round trips, damage and corruption detection (hypothesis)."""

from __future__ import annotations

import contextlib
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.errors import MediaError
from runner.procedures.archive_volume.media import (
    BLOCK_HEADER_SIZE,
    HEADER_SIZE,
    Block,
    VolumeHeader,
    VolumeReader,
    VolumeWriter,
    damage,
    decode_block,
    decode_header,
    encode_block,
    encode_header,
    unreadable_ranges,
)

refs = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_", min_size=1, max_size=32)
sizes = st.integers(min_value=64, max_value=512)


def _volume(ref: str, block_size: int, payloads: list[bytes], free: int = 0) -> bytes:
    handle = io.BytesIO()
    writer = VolumeWriter(handle, ref, block_size)
    for n, payload in enumerate(payloads, start=1):
        writer.append(n, payload)
    writer.finish(free)
    return handle.getvalue()


@given(refs, sizes, st.integers(min_value=0, max_value=2**40))
def test_header_round_trip(ref: str, block_size: int, count: int) -> None:
    header = VolumeHeader(ref, block_size, count)
    data = encode_header(header)
    assert len(data) == HEADER_SIZE
    assert decode_header(data) == header


@given(st.binary(max_size=HEADER_SIZE + 8))
def test_any_header_bytes_decode_or_raise_media_error(data: bytes) -> None:
    with contextlib.suppress(MediaError):
        decode_header(data)


@given(refs, sizes, st.integers(min_value=0, max_value=HEADER_SIZE - 1), st.integers(1, 255))
def test_any_flipped_header_byte_is_detected(ref: str, size: int, pos: int, flip: int) -> None:
    data = bytearray(encode_header(VolumeHeader(ref, size, 10)))
    data[pos] ^= flip
    if pos >= 60:  # the zero padding is not covered
        return
    with pytest.raises(MediaError) as raised:
        decode_header(bytes(data))
    assert raised.value.fix == "restore the volume file from the repair shop's image"


@given(sizes, st.integers(0, 2**20), st.integers(1, 2**40), st.data())
def test_block_round_trip(size: int, ordinal: int, object_id: int, data: st.DataObject) -> None:
    header = VolumeHeader("V", size, ordinal + 1)
    payload = data.draw(st.binary(max_size=size - BLOCK_HEADER_SIZE))
    raw = encode_block(header, Block(ordinal, object_id, payload))
    assert len(raw) == size
    assert decode_block(header, ordinal, raw) == Block(ordinal, object_id, payload)
    with pytest.raises(MediaError, match=f"block {ordinal + 1} is corrupt"):
        decode_block(header, ordinal + 1, raw)  # read at the wrong place


@given(st.binary(min_size=1, max_size=40), st.integers(0, 200), st.integers(1, 255))
def test_flipped_payload_byte_is_detected(payload: bytes, pos: int, flip: int) -> None:
    header = VolumeHeader("V", 64, 1)
    raw = bytearray(encode_block(header, Block(0, 7, payload)))
    raw[BLOCK_HEADER_SIZE + pos % len(payload)] ^= flip
    with pytest.raises(MediaError, match="block 0 is corrupt"):
        decode_block(header, 0, bytes(raw))


def test_payload_too_big_for_a_block() -> None:
    with pytest.raises(MediaError, match="does not fit"):
        encode_block(VolumeHeader("V", 64, 1), Block(0, 1, b"x" * 41))


@settings(max_examples=60)
@given(
    st.lists(st.binary(max_size=40), min_size=1, max_size=60),
    st.integers(0, 5),
    st.sets(st.integers(0, 64)),
)
def test_reader_reads_back_and_finds_exactly_the_damage(
    payloads: list[bytes], free: int, bad: set[int]
) -> None:
    data = _volume("VOL0001", 64, payloads, free)
    handle = io.BytesIO(data)
    reader = VolumeReader(handle, "v", expected_ref="VOL0001")
    total = len(payloads) + free
    assert reader.header.block_count == total
    bad = {b for b in bad if b < total}
    for ordinal in bad:
        damage(handle, reader.header, ordinal, ordinal)
    for ordinal in range(total):
        if ordinal in bad:
            with pytest.raises(MediaError, match=f"block {ordinal} is unreadable"):
                reader.read(ordinal)
        else:
            block = reader.read(ordinal)
            if ordinal < len(payloads):
                assert block == Block(ordinal, ordinal + 1, payloads[ordinal])
            else:
                assert block.object_id == 0
    expected = []
    for ordinal in sorted(bad):
        if expected and expected[-1][1] == ordinal - 1:
            expected[-1] = (expected[-1][0], ordinal)
        else:
            expected.append((ordinal, ordinal))
    assert list(unreadable_ranges(reader)) == expected


@given(st.integers(1, 200))
def test_truncated_or_extended_file_is_refused(cut: int) -> None:
    data = _volume("VOL0001", 64, [b"abc"] * 5)
    with pytest.raises(MediaError, match="truncated"):
        VolumeReader(io.BytesIO(data[: len(data) - cut]), "v")
    with pytest.raises(MediaError, match="longer"):
        VolumeReader(io.BytesIO(data + b"\0" * cut), "v")


def test_wrong_volume_and_out_of_range_ordinal() -> None:
    data = _volume("VOL0001", 64, [b"abc"])
    with pytest.raises(MediaError, match="holds volume VOL0001, not VOL0002"):
        VolumeReader(io.BytesIO(data), "v", expected_ref="VOL0002")
    reader = VolumeReader(io.BytesIO(data), "v")
    with pytest.raises(MediaError, match="outside the volume"):
        reader.read(1)
