"""A small archive site built by hand from docs/archive_volume.md alone: the
catalog tables as the doc's table lists them, and volume files in the doc's
media format (no generator, no procedure code)."""

from __future__ import annotations

import sqlite3
import struct
import zlib
from pathlib import Path

BLOCK_SIZE = 128

#: The catalog as docs/archive_volume.md ("Catalog tables") describes it.
DDL = """
CREATE TABLE carriers (carrier_id TEXT PRIMARY KEY, loaded INTEGER NOT NULL);
CREATE TABLE volumes (volume_ref TEXT PRIMARY KEY, carrier_id TEXT NOT NULL,
    status TEXT NOT NULL, online INTEGER NOT NULL, block_count INTEGER NOT NULL,
    media_path TEXT NOT NULL);
CREATE TABLE studies (study_ref TEXT PRIMARY KEY, study_uid TEXT NOT NULL,
    accession_number TEXT NOT NULL, patient_name TEXT NOT NULL, patient_id TEXT NOT NULL,
    modality TEXT NOT NULL, station_name TEXT NOT NULL, archived_count INTEGER NOT NULL);
CREATE TABLE objects (object_id INTEGER PRIMARY KEY, study_ref TEXT NOT NULL,
    size INTEGER NOT NULL, checksum TEXT NOT NULL);
CREATE TABLE object_locations (volume_ref TEXT NOT NULL, ordinal INTEGER NOT NULL,
    object_id INTEGER NOT NULL, state TEXT NOT NULL,
    PRIMARY KEY (volume_ref, ordinal)) WITHOUT ROWID;
CREATE INDEX object_locations_object ON object_locations (object_id);
CREATE TABLE cache_locations (study_ref TEXT NOT NULL, host TEXT NOT NULL,
    protected INTEGER NOT NULL, PRIMARY KEY (study_ref, host));
CREATE TABLE cached_objects (object_id INTEGER PRIMARY KEY, host TEXT NOT NULL);
CREATE TABLE archive_destinations (study_ref TEXT NOT NULL, volume_ref TEXT NOT NULL,
    from_volume TEXT NOT NULL, queued_at TEXT NOT NULL, PRIMARY KEY (study_ref, from_volume));
CREATE TABLE send_jobs (job_id INTEGER PRIMARY KEY, study_ref TEXT NOT NULL,
    volume_ref TEXT NOT NULL, created_at TEXT NOT NULL, state TEXT NOT NULL,
    objects_affected INTEGER NOT NULL, objects_copied INTEGER NOT NULL,
    UNIQUE (study_ref, volume_ref));
CREATE TABLE volume_scans (volume_ref TEXT NOT NULL, begin INTEGER NOT NULL,
    end INTEGER NOT NULL, scanned_at TEXT NOT NULL, PRIMARY KEY (volume_ref, begin));
"""

#: study -> object ids. ST01: objects 1-6 on VOL0002 (ordinals 0-5), with copies
#: of 1-3 on VOL0001; ST02: 7 and 8 on VOL0002 (6, 7), 9 only on VOL0001;
#: ST03: 10 and 11 on VOL0002 (8, 9), 10 also in cache. VOL0003 is open, empty.
STUDIES = {"ST01": [1, 2, 3, 4, 5, 6], "ST02": [7, 8, 9], "ST03": [10, 11]}
#: volume_ref -> [(ordinal, object_id)]
LOCATIONS = {
    "VOL0001": [(0, 1), (1, 2), (2, 3), (3, 9)],
    "VOL0002": [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, 7), (7, 8), (8, 10), (9, 11)],
}
CACHED = [10]
VOLUMES = {"VOL0001": ("C01", "closed"), "VOL0002": ("C02", "closed"), "VOL0003": ("C03", "open")}


def payload(object_id: int) -> bytes:
    return f"object {object_id} bytes".encode() * 3


def _volume_file(ref: str, blocks: int, used: dict[int, int]) -> bytes:
    head = struct.pack("<8sHH32sIQ", b"ARCHVOL1", 1, 64, ref.encode(), BLOCK_SIZE, blocks)
    out = [head + struct.pack("<I", zlib.crc32(head)) + bytes(4)]
    for n in range(blocks):
        data = payload(used[n]) if n in used else b""
        block = struct.pack("<QQII", n, used.get(n, 0), len(data), zlib.crc32(data)) + data
        out.append(block.ljust(BLOCK_SIZE, b"\0"))
    return b"".join(out)


def build(root: Path) -> Path:
    """Write the site under `root`; return it."""
    (root / "volumes").mkdir(parents=True)
    db = sqlite3.connect(root / "catalog.sqlite")
    db.executescript(DDL)
    for ref, (carrier, status) in VOLUMES.items():
        used = dict(LOCATIONS.get(ref, []))
        blocks = max(used, default=-1) + 1 + (4 if status == "open" else 0)
        path = f"volumes/{ref}.vol"
        (root / path).write_bytes(_volume_file(ref, blocks, used))
        db.execute("INSERT INTO carriers VALUES (?, 0)", (carrier,))
        db.execute(
            "INSERT INTO volumes VALUES (?, ?, ?, 0, ?, ?)", (ref, carrier, status, blocks, path)
        )
        db.executemany(
            "INSERT INTO object_locations VALUES (?, ?, ?, 'A')",
            [(ref, o, i) for o, i in used.items()],
        )
    for study, ids in STUDIES.items():
        n = study[-1]
        db.execute(
            "INSERT INTO studies VALUES (?, ?, ?, ?, ?, 'CT', 'CT01', 0)",
            (study, f"1.2.3.{n}", f"ACC{n}", f"PATIENT^{n}", f"P{n}"),
        )
        for object_id in ids:
            data = payload(object_id)
            db.execute(
                "INSERT INTO objects VALUES (?, ?, ?, ?)",
                (object_id, study, len(data), f"{zlib.crc32(data):08x}"),
            )
    db.execute(
        "UPDATE studies SET archived_count = (SELECT count(*) FROM object_locations l"
        " JOIN objects o USING (object_id) WHERE o.study_ref = studies.study_ref AND l.state = 'A')"
    )
    for object_id in CACHED:
        study = next(s for s, ids in STUDIES.items() if object_id in ids)
        (root / "cache" / study).mkdir(parents=True, exist_ok=True)
        (root / "cache" / study / str(object_id)).write_bytes(payload(object_id))
        db.execute("INSERT INTO cached_objects VALUES (?, 'pacs01')", (object_id,))
        db.execute("INSERT OR IGNORE INTO cache_locations VALUES (?, 'pacs01', 0)", (study,))
    db.commit()
    db.close()
    return root


#: Every column that names a volume, with the table it is in (foreign-key style).
VOLUME_REFERENCES = (
    ("object_locations", "volume_ref"),
    ("archive_destinations", "volume_ref"),
    ("send_jobs", "volume_ref"),
    ("volume_scans", "volume_ref"),
)


def dangling_volume_references(db_path: Path) -> list[tuple[str, str]]:
    """(table, volume_ref) for every row naming a volume not in `volumes`."""
    db = sqlite3.connect(db_path)
    try:
        found: list[tuple[str, str]] = []
        for table, column in VOLUME_REFERENCES:
            found += [
                (table, r[0])
                for r in db.execute(
                    f"SELECT DISTINCT t.{column} FROM {table} t LEFT JOIN volumes v"
                    f" ON v.volume_ref = t.{column} WHERE v.volume_ref IS NULL"
                )
            ]
        return found
    finally:
        db.close()
