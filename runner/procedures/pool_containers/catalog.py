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

TABLES = ("pools", "elements", "branches", "versions", "containers", "container_versions")


def create(conn: sqlite3.Connection) -> None:
    """Create the tables (if missing), their unique keys and indexes.

    The value domains (pools.kind, elements.type_manager, versions.data) are
    documented, not enforced: sqlite-utils has no CHECK constraints, and the
    generator only writes values from them."""
    # Imported here: sqlite-utils takes ~0.3 s to import, and check/fix never create tables.
    import sqlite_utils

    db = sqlite_utils.Database(conn)
    db.table("pools").create(
        {"name": str, "path": str, "kind": str},  # path: site-relative; kind: source|cleartext
        pk="name",
        not_null={"path", "kind"},
        if_not_exists=True,
    )
    db.table("elements").create(
        {"id": int, "oid": str, "path": str, "type_manager": str},  # oid: 32 hex digits
        pk="id",
        not_null={"oid", "path", "type_manager"},
        if_not_exists=True,
    )
    db.table("branches").create(
        {"id": int, "element_id": int, "name": str},  # name: "/main", "/main/dev"
        pk="id",
        not_null={"element_id", "name"},
        foreign_keys=[("element_id", "elements", "id")],
        if_not_exists=True,
    )
    db.table("versions").create(
        {
            "id": int,
            "branch_id": int,
            "number": int,
            "created_at": str,
            "data": str,  # present|gone
            "data_gone_at": str,
        },
        pk="id",
        not_null={"branch_id", "number", "created_at", "data"},
        defaults={"data": "present"},
        foreign_keys=[("branch_id", "branches", "id")],
        if_not_exists=True,
    )
    db.table("containers").create(
        {"id": int, "element_id": int, "pool": str, "type_manager": str, "relpath": str},
        pk="id",
        not_null={"element_id", "pool", "type_manager", "relpath"},  # relpath: in the pool
        foreign_keys=[("element_id", "elements", "id"), ("pool", "pools", "name")],
        if_not_exists=True,
    )
    db.table("container_versions").create(
        {"container_id": int, "version_id": int},
        pk=("container_id", "version_id"),
        not_null={"container_id", "version_id"},
        foreign_keys=[("container_id", "containers", "id"), ("version_id", "versions", "id")],
        if_not_exists=True,
    )
    for table, columns, name, unique in (
        ("pools", ["path"], "pools_path", True),
        ("elements", ["oid"], "elements_oid", True),
        ("elements", ["path"], "elements_path", True),
        ("branches", ["element_id", "name"], "branches_element_name", True),
        ("versions", ["branch_id", "number"], "versions_branch_number", True),
        ("containers", ["pool", "relpath"], "containers_pool_relpath", True),
        ("containers", ["element_id"], "containers_element", False),
        ("container_versions", ["version_id"], "container_versions_version", False),
    ):
        db.table(table).create_index(columns, index_name=name, unique=unique, if_not_exists=True)


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
