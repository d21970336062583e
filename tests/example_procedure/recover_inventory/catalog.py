"""The inventory catalog: its tables and the lookups the actions share.

    items(id INTEGER PRIMARY KEY, name TEXT NOT NULL, bin TEXT NOT NULL,
          state TEXT NOT NULL DEFAULT 'ok')    state: ok | damaged
    scans(id INTEGER PRIMARY KEY, at TEXT NOT NULL, damaged INTEGER NOT NULL)

The actions see the catalog attached to their step's connection, so plain
table names resolve to it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import sqlite_utils

TABLES = ("items", "scans")


def create(path: Path, items: Iterable[Mapping[str, Any]]) -> None:
    """A new catalog at `path` holding `items` (the world generator's)."""
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path)
    try:
        db = sqlite_utils.Database(conn)
        db["items"].create(
            {"id": int, "name": str, "bin": str, "state": str},
            pk="id",
            not_null={"name", "bin", "state"},
            defaults={"state": "ok"},
        )
        db["items"].create_index(["state"])
        db["scans"].create(
            {"id": int, "at": str, "damaged": int}, pk="id", not_null={"at", "damaged"}
        )
        db["items"].insert_all(items, batch_size=1000)
    finally:
        conn.close()


def item_ids(db: sqlite3.Connection, state: str) -> list[int]:
    return [
        row[0] for row in db.execute("SELECT id FROM items WHERE state = ? ORDER BY id", (state,))
    ]


def damaged_items(db: sqlite3.Connection) -> list[dict[str, Any]]:
    """The items a scan marked, as the report lists them."""
    rows = db.execute("SELECT id, bin, name FROM items WHERE state = 'damaged' ORDER BY id")
    return [{"id": i, "bin": b, "name": n} for i, b, n in rows]


def mark_damaged(db: sqlite3.Connection, ids: list[int]) -> int:
    cur = db.executemany("UPDATE items SET state = 'damaged' WHERE id = ?", [(i,) for i in ids])
    return cur.rowcount


def delete(db: sqlite3.Connection, ids: list[int]) -> int:
    cur = db.executemany("DELETE FROM items WHERE id = ?", [(i,) for i in ids])
    return cur.rowcount


def record_scan(db: sqlite3.Connection, at: str, damaged: int) -> None:
    db.execute("INSERT INTO scans (at, damaged) VALUES (?, ?)", (at, damaged))


def last_scan(db: sqlite3.Connection) -> str | None:
    row = db.execute("SELECT at FROM scans ORDER BY id DESC LIMIT 1").fetchone()
    return None if row is None else str(row[0])


def count(db: sqlite3.Connection, state: str | None = None) -> int:
    if state is None:
        return int(db.execute("SELECT count(*) FROM items").fetchone()[0])
    return int(db.execute("SELECT count(*) FROM items WHERE state = ?", (state,)).fetchone()[0])
