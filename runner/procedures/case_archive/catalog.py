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

import sqlite_utils

from runner.clock import parse_stamp, stamp  # noqa: F401 - the catalog's time format

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
}


def create(conn: sqlite3.Connection) -> None:
    """The catalog's tables and indexes, in dependency order (a foreign key's
    table first). sqlite-utils cannot declare CHECK constraints: the allowed
    values of tapes.state, store_sessions.mode and files.location are kept by
    the actions, the only writers (docs/case_archive.md lists them)."""
    db = sqlite_utils.Database(conn)
    db.table("settings").create({"key": str, "value": str}, pk="key", not_null={"value"}, **_NEW)
    db.table("products").create(
        {
            "id": int,
            "product": str,  # e.g. radar_a
            "time": str,  # valid time of the product file
            "relpath": str,  # relative to the ingest directory
            "size": int,
            "digest": str,  # sha256 hex of the content
        },
        pk="id",
        not_null={"product", "time", "relpath", "size", "digest"},
        **_NEW,
    )
    _unique(db, "products", "relpath")
    db.table("products").create_index(
        ["product", "time"], index_name="products_product_time", if_not_exists=True
    )
    db.table("tapes").create(
        {
            "label": str,  # <pool>_<n>_2
            "pool": str,
            "number": int,
            "capacity": int,  # bytes
            "used": int,  # bytes of the tape file that hold committed data
            "state": str,  # current | old | blank
            "write_protected": int,
        },
        pk="label",
        not_null={"pool", "number", "capacity", "used", "state", "write_protected"},
        defaults={"write_protected": 0},
        **_NEW,
    )
    _unique(db, "tapes", "pool", "number")
    db.table("backups").create(
        {
            "id": int,  # also written in the tape's session marks
            "tape": str,
            "written": str,
            "offset": int,  # where the session starts on the tape
            "files": int,
            "bytes": int,
        },
        pk="id",
        not_null={"tape", "written", "offset", "files", "bytes"},
        foreign_keys=[("tape", "tapes", "label")],
        **_NEW,
    )
    db.table("store_sessions").create(
        {
            "id": int,
            "name": str,
            "products": str,  # JSON list of product names
            "time_from": str,
            "time_to": str,  # NULL: open-ended (continuous)
            "mode": str,  # one_time | continuous
            "created": str,
            "updated": str,
        },
        pk="id",
        not_null={"name", "products", "time_from", "mode", "created", "updated"},
        **_NEW,
    )
    _unique(db, "store_sessions", "name")
    db.table("files").create(
        {
            "id": int,
            "relpath": str,  # the ingest relative path, kept in cache and on tape
            "product": str,
            "time": str,
            "size": int,
            "digest": str,
            "location": str,  # cache | tape
            "backup_id": int,
            "tape_offset": int,
        },
        pk="id",
        not_null={"relpath", "product", "time", "size", "digest", "location"},
        foreign_keys=[("backup_id", "backups", "id")],
        **_NEW,
    )
    _unique(db, "files", "relpath")
    db.table("files").create_index(["backup_id"], index_name="files_backup", if_not_exists=True)
    db.table("files").create_index(["location"], index_name="files_location", if_not_exists=True)
    db.table("session_files").create(
        {"session_id": int, "file_id": int},
        pk=("session_id", "file_id"),
        not_null={"session_id", "file_id"},
        foreign_keys=[("session_id", "store_sessions", "id"), ("file_id", "files", "id")],
        **_NEW,
    )
    db.table("session_files").create_index(
        ["file_id"], index_name="session_files_file", if_not_exists=True
    )
    db.table("cases").create(
        {
            "name": str,
            "directory": str,  # site-relative case directory
            "session": str,
            "files": int,
            "bytes": int,
            "in_use": int,  # being displayed: cannot be deleted
            "restored": str,
        },
        pk="name",
        not_null={"directory", "session", "files", "bytes", "in_use", "restored"},
        defaults={"in_use": 0},
        **_NEW,
    )
    _unique(db, "cases", "directory")


_NEW: dict[str, Any] = {"if_not_exists": True}


def _unique(db: sqlite_utils.Database, table: str, *columns: str) -> None:
    """A UNIQUE constraint as sqlite-utils declares one: a unique index."""
    db.table(table).create_index(list(columns), unique=True, if_not_exists=True)


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
