"""A small case-archive site built by hand from docs/case_archive.md alone: the
catalog from the doc's DDL (read out of the doc itself), one tape in the doc's
tape format, and the common data directories (no generator, no procedure code)."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import struct
import zlib
from pathlib import Path

DOC = Path(__file__).resolve().parents[3] / "docs" / "case_archive.md"
LABEL = "Archive_pool_1_2"
COMMON = ["common/maps", "common/colormaps"]
STAMP = "2026-03-09T12:00:00Z"

#: relpath -> (product, time, content); the first three on the tape, the last in the cache
FILES = {
    "radar/20260309/radar_0100.dat": ("radar", "2026-03-09T01:00:00Z", b"radar one\n" * 7),
    "radar/20260309/radar_0200.dat": ("radar", "2026-03-09T02:00:00Z", b"radar two\n" * 9),
    "sat/20260309/sat_0100.dat": ("sat", "2026-03-09T01:00:00Z", b"satellite\n" * 5),
    "sat/20260309/sat_0200.dat": ("sat", "2026-03-09T02:00:00Z", b"satellite 2\n" * 4),
}
ON_TAPE = list(FILES)[:3]


def doc_ddl() -> str:
    """The catalog DDL exactly as the doc gives it."""
    found = re.search(r"```sql\n(.*?)```", DOC.read_text(), re.S)
    assert found, "docs/case_archive.md gives no DDL"
    return found.group(1)


def _crc(data: bytes) -> bytes:
    return struct.pack(">I", zlib.crc32(data))


def _mark(kind: bytes, backup_id: int, count: int) -> bytes:
    body = kind + struct.pack(">II", backup_id, count)
    return body + _crc(body)


def tape_bytes(backup_id: int, capacity: int) -> tuple[bytes, int, dict[str, int]]:
    """(the tape file, the session mark's offset, relpath -> record offset)."""
    name = LABEL.encode()
    head = b"RCTAPE01" + struct.pack(">H", len(name)) + name + struct.pack(">Q", capacity)
    tape = bytearray(head + _crc(head))
    session = len(tape)
    tape += _mark(b"SESS", backup_id, len(ON_TAPE))
    offsets = {}
    for rel in ON_TAPE:
        data, path = FILES[rel][2], rel.encode()
        offsets[rel] = len(tape)
        body = struct.pack(">HQ", len(path), len(data)) + hashlib.sha256(data).digest()
        body += path + data
        tape += b"FREC" + body + _crc(body)
    tape += _mark(b"SEND", backup_id, len(ON_TAPE))
    return bytes(tape), session, offsets


def build(root: Path, common_dirs: list[str] | None = None) -> None:
    """The site: session `hand case` (3 files on the loaded current tape, 1 in the
    cache), the common data directories, every tape step allowed all day."""
    common = COMMON if common_dirs is None else common_dirs
    for sub in ("ingest", "cache", "restore", "tapes"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for directory in COMMON:
        (root / directory).mkdir(parents=True, exist_ok=True)
        (root / directory / "README").write_text(f"common data {directory}\n")
    for rel, (_p, _t, data) in FILES.items():
        (root / "ingest" / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / "ingest" / rel).write_bytes(data)
    cached = [rel for rel in FILES if rel not in ON_TAPE]
    for rel in cached:
        (root / "cache" / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / "cache" / rel).write_bytes(FILES[rel][2])
    capacity, backup_id = 100_000, 1
    tape, session, offsets = tape_bytes(backup_id, capacity)
    (root / "tapes" / f"{LABEL}.tape").write_bytes(tape)

    conn = sqlite3.connect(root / "catalog.sqlite")
    with conn:
        conn.executescript(doc_ddl())
        settings = {
            "common_dirs": json.dumps(common),
            "loaded_tape": LABEL,
            "tape_window": "00:00-24:00",
        }
        conn.executemany("INSERT INTO settings VALUES (?, ?)", settings.items())
        conn.execute(
            "INSERT INTO tapes VALUES (?, 'Archive_pool', 1, ?, ?, 'current', 0)",
            (LABEL, capacity, len(tape)),
        )
        tape_bytes_total = sum(len(FILES[rel][2]) for rel in ON_TAPE)
        conn.execute(
            "INSERT INTO backups VALUES (?, ?, ?, ?, ?, ?)",
            (backup_id, LABEL, STAMP, session, len(ON_TAPE), tape_bytes_total),
        )
        conn.execute(
            "INSERT INTO store_sessions VALUES (1, 'hand case', ?, ?, ?, 'one_time', ?, ?)",
            (
                json.dumps(["radar", "sat"]),
                "2026-03-09T00:00:00Z",
                "2026-03-09T03:00:00Z",
                STAMP,
                STAMP,
            ),
        )
        for number, (rel, (product, time, data)) in enumerate(FILES.items(), start=1):
            digest = hashlib.sha256(data).hexdigest()
            conn.execute(
                "INSERT INTO products VALUES (?, ?, ?, ?, ?, ?)",
                (number, product, time, rel, len(data), digest),
            )
            on_tape = rel in ON_TAPE
            conn.execute(
                "INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    number,
                    rel,
                    product,
                    time,
                    len(data),
                    digest,
                    "tape" if on_tape else "cache",
                    backup_id if on_tape else None,
                    offsets.get(rel),
                ),
            )
            conn.execute("INSERT INTO session_files VALUES (1, ?)", (number,))
    conn.close()
