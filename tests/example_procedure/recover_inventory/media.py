"""The shelf file: one line per item, `ID<TAB>NAME<TAB>CRC32` (CRC of `ID<TAB>NAME`, hex).

Only the format lives here: writing records, reading them back, and telling a
good record from a damaged one.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Record:
    item_id: int
    name: str
    ok: bool  # the checksum matches


def checksum(item_id: int, name: str) -> str:
    crc = zlib.crc32(f"{item_id}\t{name}".encode())
    return f"{crc:08x}"


def encode(item_id: int, name: str) -> bytes:
    return f"{item_id}\t{name}\t{checksum(item_id, name)}\n".encode()


def encode_all(records: Iterable[Record]) -> bytes:
    return b"".join(encode(r.item_id, r.name) for r in records)


def decode(data: bytes) -> list[Record]:
    """Every record whose item id can still be read, good or damaged."""
    records = []
    for line in data.decode("utf-8", errors="replace").splitlines():
        fields = line.split("\t")
        if len(fields) != 3 or not fields[0].isdigit():
            continue  # not even the id survived: the item shows up as missing
        item_id, name, crc = int(fields[0]), fields[1], fields[2]
        records.append(Record(item_id, name, crc == checksum(item_id, name)))
    return records
