"""The repository database (SQLite): pools, elements, branches, versions, containers.

Time stamps are UTC text `YYYY-MM-DDTHH:MM:SSZ`, so they sort as they compare.
A version's data is either `present` (held by exactly one referenced
container, listed in container_versions) or `gone` (the fix accepted its loss:
the version stays in history, `data_gone_at` says when its data was given up).
"""

from __future__ import annotations

import sqlite3

from runner.clock import parse_stamp, stamp  # noqa: F401 - the catalog's time format
from runner.site import safe_relpath

DDL = """
CREATE TABLE IF NOT EXISTS pools (
    name TEXT PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,           -- site-relative directory of the pool
    kind TEXT NOT NULL CHECK (kind IN ('source', 'cleartext'))
);
CREATE TABLE IF NOT EXISTS elements (
    id INTEGER PRIMARY KEY,
    oid TEXT NOT NULL UNIQUE,            -- 32 hex digits, as in container headers
    path TEXT NOT NULL UNIQUE,
    type_manager TEXT NOT NULL CHECK (type_manager IN ('whole_copy', 'delta', 'compressed'))
);
CREATE TABLE IF NOT EXISTS branches (
    id INTEGER PRIMARY KEY,
    element_id INTEGER NOT NULL REFERENCES elements(id),
    name TEXT NOT NULL,                  -- "/main", "/main/dev"
    UNIQUE (element_id, name)
);
CREATE TABLE IF NOT EXISTS versions (
    id INTEGER PRIMARY KEY,
    branch_id INTEGER NOT NULL REFERENCES branches(id),
    number INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    data TEXT NOT NULL DEFAULT 'present' CHECK (data IN ('present', 'gone')),
    data_gone_at TEXT,
    UNIQUE (branch_id, number)
);
CREATE TABLE IF NOT EXISTS containers (
    id INTEGER PRIMARY KEY,
    element_id INTEGER NOT NULL REFERENCES elements(id),
    pool TEXT NOT NULL REFERENCES pools(name),
    type_manager TEXT NOT NULL,
    relpath TEXT NOT NULL,               -- relative to the pool directory
    UNIQUE (pool, relpath)
);
CREATE INDEX IF NOT EXISTS containers_element ON containers(element_id);
CREATE TABLE IF NOT EXISTS container_versions (
    container_id INTEGER NOT NULL REFERENCES containers(id),
    version_id INTEGER NOT NULL REFERENCES versions(id),
    PRIMARY KEY (container_id, version_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS container_versions_version ON container_versions(version_id);
"""

TABLES = ("pools", "elements", "branches", "versions", "containers", "container_versions")


def create(conn: sqlite3.Connection) -> None:
    """Create the tables (if missing), their keys and indexes.

    Written as SQL, not through sqlite-utils: the CHECK constraints (the value
    domains of pools.kind, elements.type_manager, versions.data) and
    container_versions' WITHOUT ROWID are rules sqlite-utils cannot declare.
    The world generator fills the tables through sqlite-utils.
    """
    conn.executescript(DDL)


def pools(conn: sqlite3.Connection) -> list[tuple[str, str, str]]:
    """(name, path, kind) of every pool, by name. Pools are few."""
    return [
        (r[0], r[1], r[2]) for r in conn.execute("SELECT name, path, kind FROM pools ORDER BY name")
    ]


def bad_pool_paths(conn: sqlite3.Connection) -> list[str]:
    """Pools whose path is not a clean site-relative path (e.g. escapes the site)."""
    bad = []
    for name, path, _kind in pools(conn):
        try:
            clean = str(safe_relpath(path, what=f"pool {name} path"))
        except Exception as exc:  # SiteError; reported, never raised from here
            bad.append(f"{name}: {getattr(exc, 'message', exc)}")
            continue
        if clean != path.rstrip("/"):
            bad.append(f"{name}: path {path!r} is not normalised (use {clean!r})")
    return bad
