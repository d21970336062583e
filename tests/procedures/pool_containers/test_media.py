"""The container format: round trips, and every kind of damage detected (hypothesis)."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.errors import MediaError
from runner.procedures.pool_containers import media

OID = "0123456789abcdef0123456789abcdef"

branches = st.sampled_from(["/main", "/main/dev", "/main/rel_1.0", "/main/dev/fix"])
version_sets = st.dictionaries(
    st.tuples(branches, st.integers(0, 2**32 - 1)), st.binary(max_size=300), min_size=1, max_size=8
)
type_managers = st.sampled_from(media.TYPE_MANAGERS)


def _container(tm: str, versions: dict[tuple[str, int], bytes]) -> bytes:
    if tm == "whole_copy":
        versions = dict(list(versions.items())[:1])
    return media.encode(OID, tm, [(b, n, d) for (b, n), d in versions.items()])


@given(type_managers, version_sets)
def test_round_trip(tm: str, versions: dict[tuple[str, int], bytes]) -> None:
    blob = _container(tm, versions)
    header = media.parse(blob, "c")
    assert header.oid == OID and header.type_manager == tm
    assert media.read_header(io.BytesIO(blob), "c", len(blob)) == header
    assert media.corrupt_in(blob, header) == []
    handle = io.BytesIO(blob)
    for entry in header.entries:
        assert media.read_version(handle, header, entry) == versions[entry.key]
    assert [e.key for e in header.entries] == sorted(e.key for e in header.entries)


@given(type_managers, version_sets, st.data())
def test_every_truncation_is_detected(
    tm: str, versions: dict[tuple[str, int], bytes], data: st.DataObject
) -> None:
    blob = _container(tm, versions)
    cut = data.draw(st.integers(0, len(blob) - 1))
    with pytest.raises(MediaError):
        media.parse(blob[:cut], "c")
    with pytest.raises(MediaError):
        media.read_header(io.BytesIO(blob[:cut]), "c", cut)


@given(type_managers, version_sets, st.data())
def test_a_byte_flip_never_yields_wrong_data(
    tm: str, versions: dict[tuple[str, int], bytes], data: st.DataObject
) -> None:
    """A flipped byte is structural damage (MediaError) or a corrupt version; when neither
    is reported, every version still reads back exactly (e.g. a flip in a zlib header's
    informational bits), so wrong data is never served."""
    original = _container(tm, versions)
    blob = bytearray(original)
    at = data.draw(st.integers(0, len(blob) - 1))
    blob[at] ^= data.draw(st.integers(1, 255))
    damaged = bytes(blob)
    try:
        header = media.parse(damaged, "c")
    except MediaError:
        return
    if media.corrupt_in(damaged, header):
        return
    assert at >= header.data_start, "a header flip must never pass"
    handle = io.BytesIO(damaged)
    expected = media.parse(original, "c")
    for entry in header.entries:
        assert media.read_version(handle, header, entry) == media.read_version(
            io.BytesIO(original),
            expected,
            expected.entry(entry.key),  # type: ignore[arg-type]
        )


@given(st.binary(max_size=400))
def test_garbage_never_escapes_as_another_error(blob: bytes) -> None:
    with pytest.raises(MediaError):
        media.parse(blob, "junk")
    with pytest.raises(MediaError):
        media.read_header(io.BytesIO(blob), "junk", len(blob))


@given(type_managers, version_sets)
def test_trailing_bytes_are_damage(tm: str, versions: dict[tuple[str, int], bytes]) -> None:
    blob = _container(tm, versions) + b"\0"
    with pytest.raises(MediaError, match="trailing"):
        media.parse(blob, "c")


@settings(max_examples=20)
@given(type_managers, version_sets)
def test_streamed_write_equals_encode(tm: str, versions: dict[tuple[str, int], bytes]) -> None:
    blob = _container(tm, versions)
    header = media.parse(blob, "c")
    source = io.BytesIO(blob)
    parts = [
        media.Part(
            e.branch,
            e.number,
            e.stored,
            e.raw,
            e.digest,
            lambda e=e: media.read_stored(source, header, e),
        )
        for e in header.entries
    ]
    out = io.BytesIO()
    media.write(out, OID, tm, parts)
    assert out.getvalue() == blob


def test_big_header_is_read_incrementally() -> None:
    """A version table longer than the first read still parses from a stream."""
    versions = [(f"/main/{'b' * 200}{i % 7}", i, b"x") for i in range(1500)]
    blob = media.encode(OID, "delta", versions)
    header = media.read_header(io.BufferedReader(io.BytesIO(blob)), "big", len(blob))  # type: ignore[arg-type]
    assert len(header.entries) == 1500


def test_writer_refuses_impossible_containers() -> None:
    with pytest.raises(MediaError, match="exactly one"):
        media.encode(OID, "whole_copy", [("/main", 0, b""), ("/main", 1, b"a")])
    with pytest.raises(MediaError, match="twice"):
        media.write(
            io.BytesIO(),
            OID,
            "delta",
            [media.part_from_raw("delta", "/main", 1, b"a")] * 2,
        )
    with pytest.raises(MediaError, match="branch"):
        media.encode(OID, "delta", [("main", 1, b"a")])
    with pytest.raises(MediaError, match="oid"):
        media.encode("xyz", "delta", [("/main", 1, b"a")])


def test_compressed_versions_are_stored_compressed() -> None:
    data = b"abc" * 1000
    blob = media.encode(OID, "compressed", [("/main", 1, data)])
    header = media.parse(blob, "c")
    assert header.entries[0].stored < len(data) == header.entries[0].raw


@given(type_managers, version_sets, st.data())
def test_inspect_agrees_with_parse_and_corrupt_in(
    tm: str, versions: dict[tuple[str, int], bytes], data: st.DataObject
) -> None:
    """The scan's fast path (`inspect`) finds exactly what parse + corrupt_in find,
    on intact, truncated and byte-flipped containers."""
    blob = bytearray(_container(tm, versions))
    how = data.draw(st.sampled_from(["intact", "cut", "flip"]))
    if how == "cut":
        blob = blob[: data.draw(st.integers(0, len(blob) - 1))]
    elif how == "flip":
        blob[data.draw(st.integers(0, len(blob) - 1))] ^= data.draw(st.integers(1, 255))
    damaged = bytes(blob)
    try:
        header = media.parse(damaged, "c")
    except MediaError as exc:
        with pytest.raises(MediaError) as caught:
            media.inspect(damaged, "c", True)
        assert caught.value.message == exc.message
        return
    oid, found_tm, rows, corrupt = media.inspect(damaged, "c", True)
    assert (oid, found_tm) == (header.oid, header.type_manager)
    assert [tuple(e) for e in header.entries] == rows
    assert corrupt == media.corrupt_in(damaged, header)
    assert media.inspect(damaged, "c", False)[3] is None
