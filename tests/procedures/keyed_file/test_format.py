"""The on-disk format: round trips, and garbage refused with MediaError only."""

from __future__ import annotations

import contextlib
import io
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.errors import MediaError
from runner.procedures.keyed_file.media import (
    CONTROL_SIZE,
    DATA_HEADER_SIZE,
    SECTOR,
    Control,
    DataHeader,
    KeyDescriptor,
    decode_block,
    encode_block,
    read_pair_info,
)

headers = st.builds(
    DataHeader, st.integers(1, 60_000), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)
)


@st.composite
def controls(draw: st.DrawFn) -> Control:
    record_length = draw(st.integers(8, 2_000))
    spb = draw(st.integers(1, 64))
    keys = []
    for _ in range(draw(st.integers(1, 16))):
        length = draw(st.integers(1, min(record_length, 50)))
        position = draw(st.integers(0, record_length - length))
        keys.append(
            KeyDescriptor(position, length, draw(st.booleans()), draw(st.integers(4, 2**32 - 1)))
        )
    user = draw(st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=32))
    return Control(
        spb,
        record_length,
        draw(st.booleans()),
        draw(st.integers(4, 2**32 - 1)),
        draw(st.integers(0, 2**40)),
        user,
        tuple(keys),
    )


@given(headers)
def test_data_header_round_trip(header: DataHeader) -> None:
    raw = header.encode()
    assert len(raw) == DATA_HEADER_SIZE
    assert DataHeader.decode(raw, "x.dat") == header


@given(controls())
def test_control_block_round_trip(control: Control) -> None:
    raw = control.encode()
    assert len(raw) == CONTROL_SIZE
    assert Control.decode(raw, "x.key") == control


@given(controls(), st.integers(0, CONTROL_SIZE - 1), st.integers(1, 255))
def test_any_flipped_control_byte_is_refused(control: Control, at: int, xor: int) -> None:
    raw = bytearray(control.encode())
    raw[at] ^= xor
    with pytest.raises(MediaError):
        Control.decode(bytes(raw), "x.key")


@given(headers, st.integers(0, DATA_HEADER_SIZE - 1), st.integers(1, 255))
def test_any_flipped_header_byte_is_refused(header: DataHeader, at: int, xor: int) -> None:
    raw = bytearray(header.encode())
    raw[at] ^= xor
    with pytest.raises(MediaError):
        DataHeader.decode(bytes(raw), "x.dat")


@settings(max_examples=300)
@given(st.binary(max_size=CONTROL_SIZE + 10))
def test_garbage_is_a_media_error_never_a_crash(raw: bytes) -> None:
    for decode in (lambda r: DataHeader.decode(r, "x.dat"), lambda r: Control.decode(r, "x.key")):
        with contextlib.suppress(MediaError):
            decode(raw)


@given(
    st.integers(1, 16),
    st.integers(0, 5),
    st.lists(st.binary(min_size=14, max_size=14), max_size=30),
    st.integers(1, 4),
)
def test_block_round_trip_and_owner_check(
    key_no: int, level: int, entries: list[bytes], spb: int
) -> None:
    width = 14 - (4 if level else 0)
    block = encode_block(key_no, level, len(entries), b"".join(entries), spb * SECTOR)
    assert len(block) == spb * SECTOR
    head = decode_block(block, address=4, key_no=key_no, width=width, name="k")
    assert (head.level, head.count) == (level, len(entries))
    with pytest.raises(MediaError, match="belongs to key"):
        decode_block(block, address=4, key_no=key_no % 16 + 1, width=width, name="k")


def test_block_with_impossible_count_is_refused() -> None:
    block = bytearray(encode_block(1, 0, 0, b"", SECTOR))
    struct.pack_into("<H", block, 4, 1000)
    struct.pack_into("<I", block, 12, zlib.crc32(bytes(block[16:]), zlib.crc32(bytes(block[:12]))))
    with pytest.raises(MediaError, match="claims 1000 entries"):
        decode_block(bytes(block), address=4, key_no=1, width=14, name="k")


def _pair(
    header: DataHeader, control: Control, records: int, key_sectors: int
) -> tuple[io.BytesIO, io.BytesIO]:
    data = io.BytesIO(header.encode() + bytes(records * header.slot))
    key = io.BytesIO(control.encode() + bytes((key_sectors - 4) * SECTOR))
    return data, key


def test_crashed_file_needs_no_check() -> None:
    control = Control(8, 20, True, 12, 0, "", (KeyDescriptor(0, 10, False, 4),))
    data, key = _pair(DataHeader(20, 5, 5), control, 5, 12)
    with pytest.raises(MediaError, match="marked crashed") as info:
        read_pair_info(data, key, "a.dat", "a.key", no_check=False)
    assert "no_check" in (info.value.fix or "")
    data.seek(0)
    key.seek(0)
    assert read_pair_info(data, key, "a.dat", "a.key", no_check=True).control.crashed


def test_pair_mismatch_and_truncation() -> None:
    control = Control(8, 20, False, 12, 0, "", (KeyDescriptor(0, 10, False, 4),))
    data, key = _pair(DataHeader(21, 5, 5), control, 5, 12)
    with pytest.raises(MediaError, match="not a pair"):
        read_pair_info(data, key, "a.dat", "a.key", no_check=True)
    data, key = _pair(DataHeader(20, 5, 9), control, 5, 12)
    with pytest.raises(MediaError, match="truncated"):
        read_pair_info(data, key, "a.dat", "a.key", no_check=True)
    data, key = _pair(DataHeader(20, 5, 5), control, 5, 8)
    with pytest.raises(MediaError, match="lies outside the file"):
        read_pair_info(data, key, "a.dat", "a.key", no_check=True)
