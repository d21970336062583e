"""Tables the procedure reads and writes inside each database being recovered.

Every recoverable database carries one row of flags in `rf_flags`, and gets an
`rf_recovery` table (one row per replayed transaction) when rolled forward.
User tables are anything else; the procedure only touches them by replaying
log calls against their single-column primary key.

Why the DDL here is SQL text and not sqlite-utils `create`/`add_column`: both
tables carry CHECK constraints (and rf_recovery is WITHOUT ROWID), which
sqlite-utils' `create` cannot write; and the actions reach these tables in
databases attached to the step's connection (`db_<name>.rf_recovery`, so that
they commit with the journal), which a sqlite-utils Table cannot name: it
quotes one unqualified identifier, so with several databases attached it
cannot say whose rf_recovery it means (simonw/sqlite-utils#608).
`transform` would also rebuild the table, dropping WITHOUT ROWID. The world
generator, which writes plain files, uses sqlite-utils for its bulk rows.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from runner.errors import MediaError

FLAGS_DDL = """
CREATE TABLE {schema}rf_flags (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    database TEXT NOT NULL,
    access TEXT NOT NULL CHECK (access IN ('enabled', 'disabled')),
    recovery TEXT NOT NULL CHECK (recovery IN ('enabled', 'disabled')),
    must_recover TEXT NOT NULL CHECK (must_recover IN ('enabled', 'disabled')),
    logging TEXT NOT NULL CHECK (logging IN ('enabled', 'disabled')),
    log_set TEXT,
    backup_stamp TEXT,
    backup_by_store INTEGER NOT NULL DEFAULT 1,
    modified INTEGER NOT NULL DEFAULT 0,
    open_count INTEGER NOT NULL DEFAULT 0,
    total_opens INTEGER NOT NULL DEFAULT 0,
    rolled_forward_to INTEGER,
    recovered_at TEXT
)
"""

RECOVERY_DDL = """
CREATE TABLE IF NOT EXISTS {schema}rf_recovery (
    logging_id INTEGER NOT NULL,
    txn INTEGER NOT NULL,
    user TEXT NOT NULL,
    program TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('applied', 'suppressed', 'rolled_back')),
    reason TEXT,
    detail TEXT,
    begin_us INTEGER NOT NULL,
    end_us INTEGER,
    first_record INTEGER NOT NULL,
    end_record INTEGER,
    calls INTEGER NOT NULL,
    begin_time TEXT,
    end_time TEXT,
    PRIMARY KEY (logging_id, txn)
) WITHOUT ROWID
"""

# An online backup copy (taken while the database was open) records where the log
# stood when it was taken: the roll forward from it starts after that record. The
# row belongs to the backup whose stamp it names (a later copy of the database
# carries a stale row along; its stamp tells).
ONLINE_DDL = """
CREATE TABLE {schema}rf_online_backup (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    backup_stamp TEXT NOT NULL,
    logging_id INTEGER NOT NULL,
    log_file INTEGER NOT NULL,
    log_record INTEGER NOT NULL
)
"""

RECOVERY_INSERT = (
    "INSERT OR REPLACE INTO {schema}rf_recovery (logging_id, txn, user, program, status, "
    "reason, detail, begin_us, end_us, first_record, end_record, calls, begin_time, end_time) "
    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)

# the same row for an applied transaction (most rows): fewer values to bind
RECOVERY_INSERT_APPLIED = (
    "INSERT OR REPLACE INTO {schema}rf_recovery (logging_id, txn, user, program, status, "
    "reason, detail, begin_us, end_us, first_record, end_record, calls, begin_time, end_time) "
    "VALUES ({logging_id:d},?,?,?,'applied',NULL,NULL,?,?,?,?,?,?,?)"
)


def ensure_recovery_table(db: sqlite3.Connection, alias: str) -> None:
    """rf_recovery as this release writes it: created, or given the time columns that
    a table made by an earlier release lacks (a backup copy taken after an earlier
    roll forward brings its rf_recovery along; so does a run resumed after an
    upgrade). Raw SQL qualified by `alias`: see the module docstring."""
    db.execute(RECOVERY_DDL.format(schema=f"{alias}."))
    columns = {r[1] for r in db.execute(f"PRAGMA {alias}.table_info(rf_recovery)")}
    for column, micros in (("begin_time", "begin_us"), ("end_time", "end_us")):
        if column not in columns:
            db.execute(f"ALTER TABLE {alias}.rf_recovery ADD COLUMN {column} TEXT")
            db.execute(
                f"UPDATE {alias}.rf_recovery SET {column} = "
                f"strftime('%Y-%m-%dT%H:%M:%fZ', {micros} / 1000000.0, 'unixepoch')"
            )


FLAG_NAMES = ("access", "recovery", "must_recover", "logging")
INTERNAL_TABLES = ("rf_flags", "rf_recovery", "rf_online_backup")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_]{0,30}$"
_NAME = re.compile(NAME_PATTERN)


def database_rel(name: str) -> str:
    return f"databases/{name}.sqlite"


def backup_rel(name: str) -> str:
    return f"backups/{name}.sqlite"


def alias_for(name: str) -> str:
    return f"db_{name}"


def backup_alias(name: str) -> str:
    return f"bk_{name}"


def valid_name(name: str) -> bool:
    return bool(_NAME.match(name))


def stamp_text(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


@dataclass
class Flags:
    """One database's rf_flags row."""

    database: str
    access: str
    recovery: str
    must_recover: str
    logging: str
    log_set: str | None
    backup_stamp: str | None
    backup_by_store: bool
    modified: bool
    open_count: int
    total_opens: int
    rolled_forward_to: int | None
    recovered_at: str | None

    @property
    def stamp_us(self) -> int | None:
        if not self.backup_stamp:
            return None
        return round(datetime.fromisoformat(self.backup_stamp).timestamp() * 1_000_000)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def read_flags(db: sqlite3.Connection, alias: str, what: str) -> Flags:
    """Read the flags row of an attached database; MediaError if it has none."""
    try:
        row = db.execute(
            f"SELECT database, access, recovery, must_recover, logging, log_set, backup_stamp, "
            f"backup_by_store, modified, open_count, total_opens, rolled_forward_to, "
            f"recovered_at FROM {alias}.rf_flags WHERE id = 1"
        ).fetchone()
    except sqlite3.OperationalError as exc:
        raise MediaError(
            f"{what} has no readable rf_flags table ({exc}); it is not a database "
            "this procedure can recover",
            fix="check the database name and the site (docs/roll_forward.md describes rf_flags)",
        ) from exc
    if row is None:
        raise MediaError(f"{what} has an empty rf_flags table", fix="restore it from its backup")
    return Flags(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        row[6],
        bool(row[7]),
        bool(row[8]),
        int(row[9]),
        int(row[10]),
        row[11],
        row[12],
    )


@dataclass(frozen=True)
class OnlineBackup:
    """Where the log stood when an online backup copy was taken (its quiesce point)."""

    logging_id: int
    log_file: int  # the log file in use
    log_record: int  # the last record written before the copy: replay starts after it

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def read_online_backup(db: sqlite3.Connection, alias: str, flags: Flags) -> OnlineBackup | None:
    """The online backup point of the copy the database comes from; None for an
    offline copy (no row, or a row of another copy than the stamp in rf_flags)."""
    table = db.execute(
        f"SELECT 1 FROM {alias}.sqlite_master WHERE type = 'table' AND name = 'rf_online_backup'"
    ).fetchone()
    if table is None:
        return None
    row = db.execute(
        f"SELECT backup_stamp, logging_id, log_file, log_record FROM {alias}.rf_online_backup "
        "WHERE id = 1"
    ).fetchone()
    if row is None or row[0] != flags.backup_stamp:
        return None
    return OnlineBackup(int(row[1]), int(row[2]), int(row[3]))


def write_flags(db: sqlite3.Connection, alias: str, changes: dict[str, Any]) -> None:
    """Update named flag columns (names come from our own code, values are bound)."""
    allowed = set(Flags.__dataclass_fields__) - {"database"}
    cols = [name for name in changes if name in allowed]
    assert len(cols) == len(changes), f"unknown flag column in {changes}"
    sets = ", ".join(f"{name} = ?" for name in cols)
    db.execute(f"UPDATE {alias}.rf_flags SET {sets} WHERE id = 1", [changes[c] for c in cols])


def user_tables(db: sqlite3.Connection, alias: str) -> list[str]:
    rows = db.execute(
        f"SELECT name FROM {alias}.sqlite_master WHERE type = 'table' "
        "AND name NOT LIKE 'sqlite_%' ORDER BY name"
    ).fetchall()
    return [r[0] for r in rows if r[0] not in INTERNAL_TABLES]


@dataclass(frozen=True)
class Statement:
    """Compiled SQL for one (database, call type, descriptor), or why it cannot run.

    `independent`: calls on different keys of this table commute (no unique index
    but the key, no trigger, no enforced foreign key), so a batch may group them.
    """

    sql: str | None
    table: str
    problem: str | None = None
    independent: bool = False


class StatementCache:
    """SQL for replaying calls, built once per table and column list.

    Every table's shape is read when the cache is made, for the databases named:
    after that it never touches the connection, so a log reader running in a
    forked process can use its copy (the schema does not change during a replay,
    which only inserts, updates and deletes rows).
    """

    def __init__(self, db: sqlite3.Connection, aliases: Iterable[str]) -> None:
        # (alias, lower-case table name; SQLite names are case-insensitive) -> shape
        self._shapes: dict[tuple[str, str], tuple[str, set[str], bool] | str] = {}
        self._stmts: dict[tuple[str, int, bytes], Statement] = {}
        foreign_keys = bool(db.execute("PRAGMA foreign_keys").fetchone()[0])
        for alias in aliases:
            for (table,) in db.execute(
                f"SELECT name FROM {alias}.sqlite_master WHERE type IN ('table', 'view')"
            ).fetchall():
                if _IDENT.match(table) and table not in INTERNAL_TABLES:
                    try:
                        shape = _shape(db, alias, table, foreign_keys)
                    except sqlite3.Error as exc:  # e.g. a virtual table of an unknown module
                        shape = f"table {table} cannot be read ({exc})"
                    self._shapes[(alias, table.lower())] = shape

    def _table(self, alias: str, table: str) -> tuple[str, set[str], bool] | str:
        if not _IDENT.match(table) or table in INTERNAL_TABLES:
            return f"table name {table!r} is not replayable"
        return self._shapes.get((alias, table.lower()), f"table {table} does not exist")

    def get(self, alias: str, rtype: int, desc: bytes) -> Statement:
        key = (alias, rtype, desc)
        stmt = self._stmts.get(key)
        if stmt is None:
            stmt = self._stmts[key] = self._build(alias, rtype, desc)
        return stmt

    def _build(self, alias: str, rtype: int, desc: bytes) -> Statement:
        from runner.procedures.roll_forward.media import DELETE, PUT, UPDATE, parse_desc

        try:
            table, cols = parse_desc(desc)
        except (ValueError, UnicodeDecodeError) as exc:
            return Statement(None, "?", f"malformed call descriptor ({exc})")
        shape = self._table(alias, table)
        if isinstance(shape, str):
            return Statement(None, table, shape)
        keycol, columns, free = shape
        bad = [c for c in cols if c not in columns or c == keycol or not _IDENT.match(c)]
        if bad or len(set(cols)) != len(cols):
            return Statement(None, table, f"table {table} has no column(s) {', '.join(bad)}")
        target = f'{alias}."{table}"'
        if rtype == PUT:
            names = ", ".join(f'"{c}"' for c in (keycol, *cols))
            marks = ", ".join(f"?{i}" for i in range(1, len(cols) + 2))
            return Statement(f"INSERT INTO {target} ({names}) VALUES ({marks})", table, None, free)
        if rtype == UPDATE:
            if not cols:
                return Statement(None, table, "update names no column")
            sets = ", ".join(f'"{c}" = ?{i}' for i, c in enumerate(cols, start=2))
            return Statement(f'UPDATE {target} SET {sets} WHERE "{keycol}" = ?1', table, None, free)
        if rtype == DELETE:
            if cols:
                return Statement(None, table, "delete carries values")
            return Statement(f'DELETE FROM {target} WHERE "{keycol}" = ?1', table, None, free)
        return Statement(None, table, f"record type {rtype} is not a call")


def _shape(
    db: sqlite3.Connection, alias: str, table: str, foreign_keys: bool
) -> tuple[str, set[str], bool] | str:
    """(key column, columns, independent) of a table, or why its calls cannot be
    replayed; independent as in Statement, and only with a key compared byte for
    byte (under NOCASE "abc" and "ABC" are one row, which the planner cannot see)."""
    info = db.execute(f'PRAGMA {alias}.table_info("{table}")').fetchall()
    pks = [r[1] for r in info if r[5]]
    if len(pks) != 1:
        return f"table {table} has no single-column primary key"
    indexes = db.execute(f'PRAGMA {alias}.index_list("{table}")').fetchall()
    unique = [r for r in indexes if r[2] and r[3] != "pk"]
    collated = [
        column
        for r in indexes
        if r[3] == "pk"
        for column in db.execute(f'PRAGMA {alias}.index_xinfo("{r[1]}")').fetchall()
        if column[2] == pks[0] and str(column[4]).upper() != "BINARY"
    ]
    triggers = db.execute(
        f"SELECT count(*) FROM {alias}.sqlite_master WHERE type = 'trigger' AND tbl_name = ?",
        (table,),
    ).fetchone()[0]
    fks = foreign_keys and db.execute(f'PRAGMA {alias}.foreign_key_list("{table}")').fetchall()
    return pks[0], {r[1] for r in info}, not (unique or collated or triggers or fks)
