"""The archive catalog: tables, indexes and the lookups every mode shares.

All SQL names tables as `catalog.<table>`: the engine attaches the catalog
under the alias `catalog` (see `CATALOG_ALIAS`), so a table of the runner's
journal can never be picked up by mistake. Only the world generator, which
creates the catalog, opens it as the main database (sqlite-utils works there).
The lookups and the actions' set-based SQL stay plain sqlite3: they are the
measured paths.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runner.errors import PreconditionFailed

if TYPE_CHECKING:
    import sqlite_utils

CATALOG_ALIAS = "catalog"
CATALOG_DEFAULT = "catalog.sqlite"
CACHE_DIR = "cache"
VOLUMES_DIR = "volumes"
DEFAULT_CACHE_HOST = "pacs01"

#: The normal ("good") visibility state of an object location, then the
#: recovery states in the order the modes move a location through them.
GOOD = "A"
IN_RECOVERY = "R"
SENT = "S"
FINISHED = "F"

#: The tables, as SQL: their CHECK constraints (flags are 0/1, states one of a
#: few letters) and object_locations' WITHOUT ROWID (one row per copy of every
#: object, clustered on the key every mode's range scan uses) are integrity and
#: speed rules sqlite-utils cannot declare. The generator fills them, and adds
#: the indexes, through sqlite-utils.
SCHEMA = """
CREATE TABLE IF NOT EXISTS carriers (
    carrier_id TEXT PRIMARY KEY,
    loaded     INTEGER NOT NULL DEFAULT 0 CHECK (loaded IN (0, 1))
);
CREATE TABLE IF NOT EXISTS volumes (
    volume_ref  TEXT PRIMARY KEY,
    carrier_id  TEXT NOT NULL REFERENCES carriers (carrier_id),
    status      TEXT NOT NULL CHECK (status IN ('open', 'closed')),
    online      INTEGER NOT NULL DEFAULT 0 CHECK (online IN (0, 1)),
    block_count INTEGER NOT NULL,
    media_path  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS studies (
    study_ref        TEXT PRIMARY KEY,
    study_uid        TEXT NOT NULL,
    accession_number TEXT NOT NULL,
    patient_name     TEXT NOT NULL,
    patient_id       TEXT NOT NULL,
    modality         TEXT NOT NULL,
    station_name     TEXT NOT NULL,
    archived_count   INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS objects (
    object_id INTEGER PRIMARY KEY,
    study_ref TEXT NOT NULL,
    size      INTEGER NOT NULL,
    checksum  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS object_locations (
    volume_ref TEXT NOT NULL,
    ordinal    INTEGER NOT NULL,
    object_id  INTEGER NOT NULL,
    state      TEXT NOT NULL DEFAULT 'A' CHECK (state IN ('A', 'R', 'S', 'F')),
    PRIMARY KEY (volume_ref, ordinal)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cache_locations (
    study_ref TEXT NOT NULL,
    host      TEXT NOT NULL,
    protected INTEGER NOT NULL DEFAULT 0 CHECK (protected IN (0, 1)),
    PRIMARY KEY (study_ref, host)
);
CREATE TABLE IF NOT EXISTS cached_objects (
    object_id INTEGER PRIMARY KEY,
    host      TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS archive_destinations (
    study_ref   TEXT NOT NULL,
    volume_ref  TEXT NOT NULL,
    from_volume TEXT NOT NULL,
    queued_at   TEXT NOT NULL,
    PRIMARY KEY (study_ref, from_volume)
);
CREATE TABLE IF NOT EXISTS send_jobs (
    job_id             INTEGER PRIMARY KEY,
    study_ref          TEXT NOT NULL,
    volume_ref         TEXT NOT NULL,
    created_at         TEXT NOT NULL,
    state              TEXT NOT NULL CHECK (state IN ('done', 'partial', 'empty')),
    objects_affected   INTEGER NOT NULL,
    objects_copied     INTEGER NOT NULL,
    UNIQUE (study_ref, volume_ref)
);
CREATE TABLE IF NOT EXISTS volume_scans (
    volume_ref TEXT NOT NULL,
    begin      INTEGER NOT NULL,
    end        INTEGER NOT NULL,
    scanned_at TEXT NOT NULL,
    PRIMARY KEY (volume_ref, begin)
);
"""

#: every table of the catalog, in schema order
TABLES: tuple[str, ...] = tuple(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", SCHEMA))

#: Built after bulk loading (much faster than maintaining them row by row):
#: (table, columns, index name).
INDEXES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("object_locations", ("object_id",), "object_locations_object"),
    ("objects", ("study_ref",), "objects_study"),
    ("volumes", ("carrier_id",), "volumes_carrier"),
)


def create_tables(db: sqlite_utils.Database) -> None:
    """Create every table of an empty catalog (opened as `db`'s main database)."""
    db.executescript(SCHEMA)


def create_indexes(db: sqlite_utils.Database) -> None:
    """The lookup indexes, then statistics for the query planner."""
    for table, columns, name in INDEXES:
        db.table(table).create_index(columns, name)
    db.analyze()


@dataclass(frozen=True)
class Volume:
    volume_ref: str
    carrier_id: str
    status: str
    online: bool
    loaded: bool
    block_count: int
    media_path: str


def get_volume(db: sqlite3.Connection, volume_ref: str) -> Volume | None:
    row = db.execute(
        "SELECT v.volume_ref, v.carrier_id, v.status, v.online, coalesce(c.loaded, 0),"
        " v.block_count, v.media_path FROM catalog.volumes v"
        " LEFT JOIN catalog.carriers c ON c.carrier_id = v.carrier_id WHERE v.volume_ref = ?",
        (volume_ref,),
    ).fetchone()
    if row is None:
        return None
    return Volume(row[0], row[1], row[2], bool(row[3]), bool(row[4]), row[5], row[6])


def require_volume(db: sqlite3.Connection, volume_ref: str) -> Volume:
    volume = get_volume(db, volume_ref)
    if volume is None:
        raise PreconditionFailed(
            f"volume {volume_ref} is not in the catalog",
            fix="check the volume_ref (table volumes); a cleaned-up volume is removed",
        )
    return volume


def open_volumes(db: sqlite3.Connection) -> list[str]:
    return [
        row[0]
        for row in db.execute(
            "SELECT volume_ref FROM catalog.volumes WHERE status = 'open' ORDER BY volume_ref"
        )
    ]


def count_states(db: sqlite3.Connection, volume_ref: str) -> dict[str, int]:
    """Locations on a volume per state (uses the primary key, no table scan)."""
    counts = {GOOD: 0, IN_RECOVERY: 0, SENT: 0, FINISHED: 0}
    for state, n in db.execute(
        "SELECT state, count(*) FROM catalog.object_locations WHERE volume_ref = ? GROUP BY state",
        (volume_ref,),
    ):
        counts[state] = n
    return counts


def cache_path(study_ref: str, object_id: int) -> str:
    """Site-relative path of an object's cached copy."""
    return f"{CACHE_DIR}/{study_ref}/{object_id}"


#: SQL expression (over an object_locations row aliased `l` on volume ?vol)
#: telling whether the object has a good copy elsewhere: cached, or a good
#: location on another volume.
RECOVERABLE_SQL = (
    "(EXISTS (SELECT 1 FROM catalog.cached_objects c WHERE c.object_id = l.object_id)"
    " OR EXISTS (SELECT 1 FROM catalog.object_locations l2 WHERE l2.object_id = l.object_id"
    " AND l2.volume_ref <> l.volume_ref AND l2.state = 'A'))"
)


#: The objects carriers_needed() looks for copies of, all uncached: those in R
#: or S on :volume, and the objects of their studies with no location on
#: :volume (recovery_attempt fetches the whole study; the study's objects
#: still good on :volume come from :volume itself).
_NEEDING_COPIES = (
    "SELECT l.object_id AS object_id FROM catalog.object_locations l"
    " WHERE l.volume_ref = :volume AND l.state IN ('R', 'S')"
    " AND NOT EXISTS (SELECT 1 FROM catalog.cached_objects co WHERE co.object_id = l.object_id)"
    " UNION SELECT o.object_id FROM catalog.objects o"
    " WHERE o.study_ref IN (SELECT o2.study_ref FROM catalog.object_locations l2"
    "  JOIN catalog.objects o2 ON o2.object_id = l2.object_id"
    "  WHERE l2.volume_ref = :volume AND l2.state IN ('R', 'S'))"
    " AND NOT EXISTS (SELECT 1 FROM catalog.object_locations l3"
    "  WHERE l3.object_id = o.object_id AND l3.volume_ref = :volume)"
    " AND NOT EXISTS (SELECT 1 FROM catalog.cached_objects co WHERE co.object_id = o.object_id)"
)


def carriers_needed(
    db: sqlite3.Connection, volume_ref: str, needing_copies: str = _NEEDING_COPIES
) -> list[tuple[str, bool, str]]:
    """Carriers holding the copies needed to recover the volume's affected objects.

    Objects with a cached copy need no carrier. Returns (carrier_id, loaded,
    reason) rows: the damaged volume's own carrier first (recovery_attempt
    needs it online, and reads the studies' still-good objects from it), then
    every carrier holding a good copy of an uncached object in recovery or of
    an uncached object of their studies that is not on the volume.
    `needing_copies` is a SELECT of those objects' `object_id` (it may use the
    parameter `:volume`); the pre-assessment passes one over the table it
    already built.
    """
    volume = require_volume(db, volume_ref)
    rows: list[tuple[str, bool, str]] = [(volume.carrier_id, volume.loaded, "damaged volume")]
    for carrier_id, loaded, vols in db.execute(
        # volumes listed in volume_ref order: group_concat keeps its input's order
        "SELECT carrier_id, loaded, group_concat(volume_ref) FROM"
        " (SELECT DISTINCT v.carrier_id AS carrier_id, coalesce(c.loaded, 0) AS loaded,"
        "  v.volume_ref AS volume_ref"
        f"  FROM ({needing_copies}) n"
        "  JOIN catalog.object_locations l2 ON l2.object_id = n.object_id"
        "   AND l2.volume_ref <> :volume AND l2.state = 'A'"
        "  JOIN catalog.volumes v ON v.volume_ref = l2.volume_ref"
        "  LEFT JOIN catalog.carriers c ON c.carrier_id = v.carrier_id"
        "  ORDER BY 1, 3)"
        " GROUP BY carrier_id ORDER BY carrier_id",
        {"volume": volume_ref},
    ):
        if carrier_id != volume.carrier_id:
            rows.append((carrier_id, bool(loaded), f"copies on {vols}"))
    return rows


def parse_ranges(raw: Sequence[object]) -> list[tuple[int, int | None]]:
    """Turn [{begin, end?}, ...] into sorted (begin, end-or-None) tuples, checked."""
    ranges: list[tuple[int, int | None]] = []
    for item in raw:
        if not isinstance(item, dict) or "begin" not in item:
            raise PreconditionFailed(
                f"ordinal range {item!r} has no begin",
                fix="write each range as {begin: N} or {begin: N, end: M}",
            )
        begin, end = item["begin"], item.get("end")
        if (
            not isinstance(begin, int)
            or begin < 0
            or (end is not None and (not isinstance(end, int) or end < begin))
        ):
            raise PreconditionFailed(
                f"ordinal range {item!r} is invalid",
                fix="begin and end are ordinals (integers >= 0) with end >= begin",
            )
        ranges.append((begin, end))
    return sorted(ranges, key=lambda r: r[0])


def scanned_ranges(db: sqlite3.Connection, volume_ref: str) -> list[tuple[int, int]] | None:
    """The unreadable ranges the last scan_volume recorded, or None if never scanned."""
    scanned = db.execute(
        "SELECT count(*) FROM catalog.volume_scans WHERE volume_ref = ?", (volume_ref,)
    ).fetchone()[0]
    marker = db.execute(
        "SELECT 1 FROM catalog.volume_scans WHERE volume_ref = ? AND begin = -1", (volume_ref,)
    ).fetchone()
    if not scanned and marker is None:
        return None
    return [
        (b, e)
        for b, e in db.execute(
            "SELECT begin, end FROM catalog.volume_scans WHERE volume_ref = ? AND begin >= 0"
            " ORDER BY begin",
            (volume_ref,),
        )
    ]
