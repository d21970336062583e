"""Streaming the data file: record chunks, the valid-record map, fixed-width splitting.

Everything here works on chunks of a few thousand records with C-level slicing
(`bytes[0::slot]`, `map(slice)`), so a pass over millions of records costs
about as much as reading the file.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator
from functools import cache
from typing import BinaryIO, TypeVar

from runner.errors import MediaError
from runner.procedures.keyed_file.media import (
    DATA_HEADER_SIZE,
    DELETED,
    FIX_RESTORE,
    LIVE,
    DataHeader,
)

T = TypeVar("T")
Progress = Callable[[Iterable[T], int | None, str], Iterator[T]]

CHUNK_BYTES = 1 << 20

#: deleted mark -> 1 for a live record, 0 for a deleted one
LIVE_TABLE = bytes(1 if i == LIVE else 0 for i in range(256))
_MARKS = bytes((LIVE, DELETED))


def no_progress(items: Iterable[T], total: int | None, label: str) -> Iterator[T]:
    """Stand-in for ctx.progress outside a run (world generator, benchmarks)."""
    return iter(items)


SPLIT_BATCH = 4096  # entries one struct call cuts


@cache
def _cutter(width: int) -> struct.Struct:
    return struct.Struct(f"{width}s" * SPLIT_BATCH)


def split(blob: bytes, width: int) -> list[bytes]:
    """Cut a blob of fixed-width items into a list of bytes (a partial item at the
    end is dropped), at C speed: one struct call per batch of items, no slice
    object per item."""
    count = len(blob) // width
    whole = count - count % SPLIT_BATCH
    out: list[bytes] = []
    if whole:
        batch = _cutter(width)
        for offset in range(0, whole * width, SPLIT_BATCH * width):
            out += batch.unpack_from(blob, offset)
    if count > whole:  # the tail by slices: a struct per tail length would pile up
        start, end = whole * width, count * width
        out += map(
            blob.__getitem__,
            map(slice, range(start, end, width), range(start + width, end + width, width)),
        )
    return out


def recno_bytes(first: int, count: int) -> list[bytes]:
    """Big-endian record numbers first..first+count-1, as key-entry suffixes."""
    return split(struct.pack(f">{count}I", *range(first, first + count)), 4)


@cache
def _chunk_records(slot: int) -> int:
    return max(1, CHUNK_BYTES // slot)


def record_chunks(
    data: BinaryIO,
    header: DataHeader,
    limit: int,
    progress: Progress[int] = no_progress,
    label: str = "record chunks",
) -> Iterator[tuple[int, bytes]]:
    """(first record number, bytes of whole record slots) for records [0, limit)."""
    per = _chunk_records(header.slot)
    chunks = (limit + per - 1) // per
    for index in progress(range(chunks), chunks, label):
        first = index * per
        count = min(per, limit - first)
        data.seek(DATA_HEADER_SIZE + first * header.slot)
        blob = data.read(count * header.slot)
        if len(blob) != count * header.slot:
            raise MediaError(
                f"data file ends inside record {first + len(blob) // header.slot:,} (truncated)",
                fix=FIX_RESTORE,
            )
        yield first, blob


def check_marks(marks: bytes, first: int, name: str) -> None:
    """Every record's first byte is LIVE or DELETED; anything else is corruption."""
    if marks.translate(None, _MARKS):
        bad = next(i for i, m in enumerate(marks) if m not in _MARKS)
        raise MediaError(
            f"data file {name}: record {first + bad:,} has an invalid deleted mark "
            f"0x{marks[bad]:02x} (corrupt record)",
            fix=FIX_RESTORE,
        )


def valid_map(
    data: BinaryIO, header: DataHeader, name: str, progress: Progress[int] = no_progress
) -> bytearray:
    """One byte per record below the keyed EOF: 1 = valid (not deleted), 0 = deleted.

    One byte per record is 1/slot of the data file: a bounded, documented cost
    (8 MB for 8 million records) that makes every key entry's check O(1).
    """
    valid = bytearray()
    for first, blob in record_chunks(data, header, header.keyed_eof, progress, "data chunks"):
        marks = blob[0 :: header.slot]
        check_marks(marks, first, name)
        valid += marks.translate(LIVE_TABLE)
    return valid
