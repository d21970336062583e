"""The log record format: round trip, and every corruption is detected."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.errors import MediaError
from runner.procedures.roll_forward import media as m

payloads = st.binary(min_size=0, max_size=300)
record_lists = st.lists(
    st.tuples(st.sampled_from(sorted(m.TYPE_NAMES)), payloads), min_size=1, max_size=30
)


def _stream(records: list[tuple[int, bytes]], first_seq: int = 1) -> bytes:
    return b"".join(m.encode_record(first_seq + i, t, p) for i, (t, p) in enumerate(records))


def _read_all(data: bytes, first_seq: int = 1, chunk_bytes: int = 64):  # type: ignore[no-untyped-def]
    out, damage = [], None
    for chunk in m.iter_chunks(
        io.BytesIO(data), 1, 0, first_seq, chunk_bytes=chunk_bytes, max_records=7
    ):
        out += [(seq, t, p) for seq, t, p, _off in chunk.records]
        if chunk.damage:
            damage = chunk.damage
    return out, damage


@given(record_lists, st.integers(1, 2**40), st.integers(17, 4096))
def test_round_trip(records: list[tuple[int, bytes]], first_seq: int, chunk: int) -> None:
    data = _stream(records, first_seq)
    got, damage = _read_all(data, first_seq, chunk)
    assert damage is None
    assert got == [(first_seq + i, t, p) for i, (t, p) in enumerate(records)]


@given(record_lists, st.data())
def test_any_byte_corruption_is_detected(
    records: list[tuple[int, bytes]], data: st.DataObject
) -> None:
    clean = _stream(records)
    where = data.draw(st.integers(0, len(clean) - 1))
    flip = data.draw(st.integers(1, 255))
    bad = bytearray(clean)
    bad[where] ^= flip
    got, damage = _read_all(bytes(bad))
    assert damage is not None
    # every record before the damaged one comes back intact, none after it
    intact = [(i + 1, t, p) for i, (t, p) in enumerate(records)]
    assert got == intact[: len(got)]
    assert damage.offset <= where


@given(record_lists, st.data())
def test_truncation_is_detected(records: list[tuple[int, bytes]], data: st.DataObject) -> None:
    clean = _stream(records)
    cut = data.draw(st.integers(1, len(clean) - 1))
    got, damage = _read_all(clean[:cut])
    ends = []
    total = 0
    for _t, p in records:
        total += m.RECORD_SIZE + len(p)
        ends.append(total)
    if cut in ends:
        assert damage is None and len(got) == ends.index(cut) + 1
    else:
        assert damage is not None and damage.reason in ("truncated", "length")


def test_sequence_gap_is_detected() -> None:
    data = m.encode_record(1, m.TIME, b"12345678") + m.encode_record(3, m.TIME, b"12345678")
    got, damage = _read_all(data)
    assert len(got) == 1 and damage is not None and damage.reason == "sequence"


@given(
    st.text(alphabet="abcdefgh_", min_size=1, max_size=20),
    st.integers(1, 999),
    st.integers(0, 2**63 - 1),
    st.integers(1, 2**40),
)
def test_header_round_trip_and_damage(name: str, number: int, lid: int, first: int) -> None:
    raw = m.encode_header(name, number, lid, first)
    header = m.read_header(io.BytesIO(raw + b"rest"), "x.log")
    assert (header.set_name, header.file_no, header.logging_id, header.first_seq) == (
        name,
        number,
        lid,
        first,
    )
    assert header.size == len(raw)
    for i in range(len(raw)):
        bad = bytearray(raw)
        bad[i] ^= 0x40
        with pytest.raises(MediaError):
            m.read_header(io.BytesIO(bytes(bad)), "x.log")


@settings(max_examples=25)
@given(st.integers(5, 60), st.data())
def test_closed_file_verification(tmp_path_factory, n: int, data: st.DataObject) -> None:  # type: ignore[no-untyped-def]
    tmp: Path = tmp_path_factory.mktemp("logs")
    writer = m.LogSetWriter(tmp, "s", 7, file_bytes=1 << 40)
    for i in range(n):
        writer.write(m.TIME, struct.pack("<q", i))
    writer.switch()
    writer.close()
    path = tmp / "s.1.log"
    raw = path.read_bytes()
    with path.open("rb") as handle:
        header = m.read_header(handle, "s.1.log")
        assert m.verify_closed_file(handle, "s.1.log", header, len(raw)) == (2, n + 1)
    where = data.draw(st.integers(header.size, len(raw) - 1))
    bad = bytearray(raw)
    bad[where] ^= 0x10
    path.write_bytes(bytes(bad))
    with path.open("rb") as handle, pytest.raises(MediaError):
        m.verify_closed_file(handle, "s.1.log", header, len(raw))


def test_call_payload_layout_is_as_documented() -> None:
    payload = m.call_payload(5, "orders", ["a", "b"], 9, ["x", None])
    txn, dlen = m.CALL_P.unpack_from(payload)
    assert txn == 5 and payload[6 : 6 + dlen] == b"orders(a,b)"
    assert json.loads(payload[6 + dlen :]) == [9, "x", None]
    record = m.encode_record(1, m.PUT, payload)
    crc, length, seq, rtype = m.RECORD.unpack_from(record)
    assert (length, seq, rtype) == (len(payload), 1, m.PUT)
    assert crc == zlib.crc32(record[4:])
