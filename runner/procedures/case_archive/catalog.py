"""The case-archive catalog (SQLite): settings, ingest products, store sessions,
files stored once, backup sessions on tapes, tapes and restored cases.

Time stamps are UTC text `YYYY-MM-DDTHH:MM:SSZ`, so they sort as they compare.
A stored file is kept once whatever the number of sessions it belongs to
(`session_files`); its `location` says where its bytes are now: `cache` (under
the cache directory, same relative path) or `tape` (`backup_id` and
`tape_offset`, the offset of its record on that backup's tape).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from runner.clock import parse_stamp, stamp  # noqa: F401 - the catalog's time format

DDL = """
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS products (
    id INTEGER PRIMARY KEY,
    product TEXT NOT NULL,              -- e.g. radar_a
    time TEXT NOT NULL,                 -- valid time of the product file
    relpath TEXT NOT NULL UNIQUE,       -- relative to the ingest directory
    size INTEGER NOT NULL,
    digest TEXT NOT NULL                -- sha256 hex of the content
);
CREATE INDEX IF NOT EXISTS products_product_time ON products(product, time);
CREATE TABLE IF NOT EXISTS tapes (
    label TEXT PRIMARY KEY,             -- <pool>_<n>_2
    pool TEXT NOT NULL,
    number INTEGER NOT NULL,
    capacity INTEGER NOT NULL,          -- bytes
    used INTEGER NOT NULL,              -- bytes of the tape file that hold committed data
    state TEXT NOT NULL CHECK (state IN ('current', 'old', 'blank')),
    write_protected INTEGER NOT NULL DEFAULT 0,
    UNIQUE (pool, number)
);
CREATE TABLE IF NOT EXISTS backups (
    id INTEGER PRIMARY KEY,             -- also written in the tape's session header
    tape TEXT NOT NULL REFERENCES tapes(label),
    written TEXT NOT NULL,
    offset INTEGER NOT NULL,            -- where the session starts on the tape
    files INTEGER NOT NULL,
    bytes INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS store_sessions (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    products TEXT NOT NULL,             -- JSON list of product names
    time_from TEXT NOT NULL,
    time_to TEXT,                       -- NULL: open-ended (continuous)
    mode TEXT NOT NULL CHECK (mode IN ('one_time', 'continuous')),
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    relpath TEXT NOT NULL UNIQUE,       -- the ingest relative path, kept in cache and on tape
    product TEXT NOT NULL,
    time TEXT NOT NULL,
    size INTEGER NOT NULL,
    digest TEXT NOT NULL,
    location TEXT NOT NULL CHECK (location IN ('cache', 'tape')),
    backup_id INTEGER REFERENCES backups(id),
    tape_offset INTEGER
);
CREATE INDEX IF NOT EXISTS files_backup ON files(backup_id);
CREATE INDEX IF NOT EXISTS files_location ON files(location);
CREATE TABLE IF NOT EXISTS session_files (
    session_id INTEGER NOT NULL REFERENCES store_sessions(id),
    file_id INTEGER NOT NULL REFERENCES files(id),
    PRIMARY KEY (session_id, file_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS session_files_file ON session_files(file_id);
CREATE TABLE IF NOT EXISTS cases (
    name TEXT PRIMARY KEY,
    directory TEXT NOT NULL UNIQUE,     -- site-relative case directory
    session TEXT NOT NULL,
    files INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    in_use INTEGER NOT NULL DEFAULT 0,  -- being displayed: cannot be deleted
    restored TEXT NOT NULL
);
"""

TABLES = (
    "settings",
    "products",
    "tapes",
    "backups",
    "store_sessions",
    "files",
    "session_files",
    "cases",
)

#: settings keys and their defaults (all text; sizes in bytes)
DEFAULTS: dict[str, str] = {
    "ingest_dir": "ingest",
    "cache_dir": "cache",
    "restore_dir": "restore",
    "tape_dir": "tapes",
    "lock_file": "cache.lock",
    "cache_capacity": "400000",
    "cache_min_capacity": "4000",
    "restore_capacity": "600000",
    "restore_min_capacity": "6000",
    "cache_warn_percent": "80",
    "common_dirs": "[]",
    "tape_window": "18:00-06:00",
    "tape_pool": "Archive_pool",
    "loaded_tape": "",
    "tape_urgent": "",
}


def create(conn: sqlite3.Connection) -> None:
    """The catalog's tables and indexes.

    Written as SQL, not through sqlite-utils: the CHECK constraints (the only
    allowed values of tapes.state, store_sessions.mode and files.location) and
    WITHOUT ROWID are the catalog's own integrity rules, and sqlite-utils cannot
    declare either. The world generator fills the tables with sqlite-utils.
    """
    conn.executescript(DDL)


class Settings:
    """The settings table as typed values (defaults for keys not set)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.values = dict(DEFAULTS)
        self.values.update({k: v for k, v in conn.execute("SELECT key, value FROM settings")})

    def text(self, key: str) -> str:
        return self.values[key]

    def number(self, key: str) -> int:
        return int(self.values[key])

    def common_dirs(self) -> list[str]:
        value: Any = json.loads(self.values["common_dirs"])
        return [str(v) for v in value]


def set_setting(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO settings (key, value) VALUES (?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def cache_used(conn: sqlite3.Connection) -> int:
    return int(
        conn.execute(
            "SELECT coalesce(sum(size), 0) FROM files WHERE location = 'cache'"
        ).fetchone()[0]
    )


def restore_used(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT coalesce(sum(bytes), 0) FROM cases").fetchone()[0])


def current_tape(conn: sqlite3.Connection) -> tuple[str, int, int, int] | None:
    """(label, capacity, used, write_protected) of the current store tape."""
    row = conn.execute(
        "SELECT label, capacity, used, write_protected FROM tapes WHERE state = 'current'"
    ).fetchone()
    return None if row is None else (str(row[0]), int(row[1]), int(row[2]), int(row[3]))
