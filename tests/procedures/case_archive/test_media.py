"""The tape format: what is written reads back, and damage never passes unnoticed."""

from __future__ import annotations

import hashlib
import io

from hypothesis import given, settings
from hypothesis import strategies as st

from runner.procedures.case_archive import media

paths = st.text(
    alphabet=st.characters(min_codepoint=48, max_codepoint=122), min_size=1, max_size=20
)
files = st.lists(
    st.tuples(paths, st.binary(max_size=200)), min_size=1, max_size=5, unique_by=lambda f: f[0]
)


def build(label: str, sessions: list[list[tuple[str, bytes]]]) -> tuple[bytes, list[int]]:
    out = io.BytesIO()
    out.write(media.header_bytes(label, 1 << 20))
    offsets = []
    for number, chosen in enumerate(sessions, start=1):
        writer = media.SessionWriter(out, out.tell(), number, len(chosen))
        for path, data in chosen:
            digest = hashlib.sha256(data).hexdigest()
            offsets.append(writer.add(path, len(data), digest, io.BytesIO(data), path))
        writer.finish()
        size = media.session_size(iter([(p, len(d)) for p, d in chosen]))
        assert writer.position - offsets[-len(chosen)] + media.MARK_SIZE == size
    return out.getvalue(), offsets


@settings(max_examples=60, deadline=None)
@given(label=paths, sessions=st.lists(files, min_size=1, max_size=3))
def test_round_trip(label: str, sessions: list[list[tuple[str, bytes]]]) -> None:
    data, offsets = build(label, sessions)
    handle = io.BytesIO(data)
    assert media.read_header(handle)[0] == label
    found = list(media.scan(io.BytesIO(data)))
    flat = [(n, p, d) for n, chosen in enumerate(sessions, 1) for p, d in chosen]
    assert [(b, i.relpath, i.problem) for b, i in found] == [(n, p, None) for n, p, _ in flat]
    for offset, (_n, path, content) in zip(offsets, flat, strict=True):
        out = io.BytesIO()
        info = media.read_record(handle, offset, "t", out)
        assert info.relpath == path and out.getvalue() == content


@settings(max_examples=150, deadline=None)
@given(
    sessions=st.lists(files, min_size=1, max_size=2),
    where=st.floats(0, 1),
    flip=st.integers(1, 255),
)
def test_any_damaged_byte_is_detected(
    sessions: list[list[tuple[str, bytes]]], where: float, flip: int
) -> None:
    data, _ = build("T_1_2", sessions)
    position = min(int(where * len(data)), len(data) - 1)
    damaged = bytearray(data)
    damaged[position] ^= flip
    try:
        found = list(media.scan(io.BytesIO(bytes(damaged))))
    except media.TapeError:
        return  # the framing or the header says so
    assert any(info.problem for _b, info in found)


@settings(max_examples=80, deadline=None)
@given(sessions=st.lists(files, min_size=1, max_size=2), cut=st.floats(0, 1))
def test_a_truncated_tape_is_detected(sessions: list[list[tuple[str, bytes]]], cut: float) -> None:
    """Cut inside a structure: an error. Cut exactly at a session boundary the
    tape just looks shorter: fewer records than the catalog's `used` promises."""
    data, _ = build("T_1_2", sessions)
    length = min(int(cut * len(data)), len(data) - 1)
    try:
        found = list(media.scan(io.BytesIO(data[:length])))
    except media.TapeError:
        return
    assert len(found) < sum(len(chosen) for chosen in sessions)


def test_a_cache_file_that_changed_is_not_written_as_sound() -> None:
    writer = media.SessionWriter(io.BytesIO(), 0, 1, 1)
    digest = hashlib.sha256(b"original").hexdigest()
    try:
        writer.add("a.dat", 8, digest, io.BytesIO(b"modified"), "cache/a.dat")
    except media.CorruptRecord as exc:
        assert "does not match the catalog" in exc.message
    else:
        raise AssertionError("a changed source was written")
