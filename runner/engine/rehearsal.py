"""The dry run's databases: the live catalogs, read in place, never written.

A plan must predict exactly what a run does, so it runs the same SQL; but it
must change no byte of the site, and copying a catalog of millions of rows
first would cost more than the run. So a plan opens one connection for all
its steps and keeps everything they write inside one transaction that is
always rolled back:

- each live catalog is attached with `journal_mode=MEMORY` (no `-journal` file
  appears next to it) and the connection has `cache_spill=OFF` (SQLite never
  writes a dirty page into the database file before COMMIT, and no COMMIT
  comes). The file is only read; a plan killed at any moment leaves it as it
  was. Memory holds every page the plan changed, twice at most (the new page
  and the rollback copy), never more than the catalogs' size;
- a step is a savepoint inside that transaction and a checkpoint releases
  and reopens it, so a failing step undoes what it did since its last
  checkpoint, as in a run, and later steps see what earlier ones did;
- temporary tables are dropped after each step: a run gives every step a
  fresh connection, so a step may create the same temporary table again.

A catalog that cannot be read without writing to it (in WAL mode, or with a
hot journal that SQLite would roll back on first read) is copied into the
plan's scratch directory and the copy is attached instead.

SQLite cannot detach a database inside a transaction once it has been read,
so when a step binds an alias to another file than before (a restore put a
new file in the media overlay), the rehearsal starts a new connection and
carries the journal rows over. If a database the old connection changed is
still in use then, its changes cannot be carried over without a copy:
`RestartOnCopies` tells the plan to start over on copies, the older way.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from runner.engine import journal
from runner.engine.journal import TrackedConnection

SAVEPOINT = "recover_plan_step"
# The pages a plan changed stay in SQLite's page cache until the rollback and
# cannot be evicted, so with the default 2 MiB cache there would soon be no
# room left for the pages it reads: every read would go back to the file, and
# an assessment after a large mark took 2.5x longer. Each catalog gets this
# much cache (a limit, not an allocation; the changed pages come on top).
CACHE_KIB = 64 * 1024
_JOURNAL_TABLES = ("recover_runs", "recover_steps")
# Authorizer action codes that only read (everything else may write its database).
_READING = {
    sqlite3.SQLITE_READ,
    sqlite3.SQLITE_SELECT,
    sqlite3.SQLITE_FUNCTION,
    sqlite3.SQLITE_TRANSACTION,
    sqlite3.SQLITE_SAVEPOINT,
    sqlite3.SQLITE_ATTACH,
    sqlite3.SQLITE_DETACH,
    sqlite3.SQLITE_RECURSIVE,
}


class RestartOnCopies(Exception):
    """The rehearsal cannot go on in place: the plan starts over on copies."""


class Rehearsal:
    """One connection and one never-committed transaction for a whole plan."""

    def __init__(self, journal_path: Path, scratch: Path) -> None:
        self.journal_path = journal_path  # the plan's scratch copy of the journal
        self.scratch = scratch
        self.conn: TrackedConnection | None = None
        # alias -> (site-relative path, the file the step asked for, the file attached)
        self.attached: dict[str, tuple[str, Path, Path]] = {}
        self.dirty: set[str] = set()  # aliases written (or maybe written) in the transaction
        self.copies: dict[Path, Path] = {}  # catalogs that had to be copied -> their copies
        self._in_step = False

    # -- the connection ------------------------------------------------------
    def connection(
        self, wanted: dict[str, tuple[str, Path]], current: dict[str, Path]
    ) -> TrackedConnection:
        """The connection, ready to attach `wanted` (alias -> (rel, path)) under
        those aliases. `current` maps each attached rel to where it is now."""
        if self.conn is not None and self._conflicts(wanted):
            self._reopen(current)
        if self.conn is None:
            self.conn = self._open()
        return self.conn

    def _open(self) -> TrackedConnection:
        conn = journal.connect(self.journal_path)
        conn.execute("PRAGMA cache_spill=OFF")  # no dirty page reaches a file before COMMIT
        conn.set_authorizer(self._authorize)
        conn.execute("BEGIN")
        return conn

    def _authorize(
        self,
        action: int,
        _arg1: str | None,
        arg2: str | None,
        database: str | None,
        _src: str | None,
    ) -> int:
        """Note which databases a statement may write (at prepare time, so cheap);
        refuse a write outside the plan's transaction: it would be committed."""
        if action not in _READING and not (action == sqlite3.SQLITE_PRAGMA and arg2 is None):
            if self.conn is not None and not self.conn.in_transaction:
                return sqlite3.SQLITE_DENY
            self.dirty.add(database or "main")
        return sqlite3.SQLITE_OK

    def _still_open(self) -> TrackedConnection:
        """The connection, if the plan's transaction is still open. SQLite rolls a
        whole transaction back on some errors (out of memory, I/O error); then a
        savepoint would begin a new one whose release commits to the catalogs."""
        assert self.conn is not None
        if not self.conn.in_transaction:
            raise sqlite3.OperationalError(
                "SQLite rolled back the plan's transaction after an earlier error "
                "(out of memory?); the steps after it cannot be predicted"
            )
        return self.conn

    def _conflicts(self, wanted: dict[str, tuple[str, Path]]) -> bool:
        by_path = {asked: alias for alias, (_, asked, _) in self.attached.items()}
        for alias, (_, path) in wanted.items():
            known = self.attached.get(alias)
            if known is not None and known[1] != path:
                return True
            if by_path.get(path, alias) != alias:
                return True
        return False

    def _reopen(self, current: dict[str, Path]) -> None:
        """A new connection with the journal rows of the old one; the old one's
        catalog changes are dropped, which is right only for files no longer in
        use (a restore replaced them), so any other changed one restarts the plan."""
        assert self.conn is not None
        for alias in self.dirty & self.attached.keys():
            rel, asked, _ = self.attached[alias]
            if current.get(rel) == asked:
                raise RestartOnCopies(f"{rel} changed and is still in use")
        old = self.conn
        old.close_cursors()
        rows = {
            table: old.execute(f"SELECT * FROM main.{table}").fetchall()
            for table in _JOURNAL_TABLES
        }
        self.close()
        conn = self._open()
        for table, table_rows in rows.items():
            conn.execute(f"DELETE FROM main.{table}")
            if table_rows:
                marks = ", ".join("?" * len(table_rows[0]))
                conn.executemany(f"INSERT INTO main.{table} VALUES ({marks})", table_rows)
        self.conn = conn

    def attach(self, alias: str, rel: str, path: Path) -> None:
        """Attach `path` as `alias` so that reading it writes nothing and writing
        it stays in memory (raises sqlite3.DatabaseError if it is no database)."""
        assert self.conn is not None
        if alias in self.attached:
            return
        target = self._copy_if_needed(path)
        conn = self.conn
        conn.execute(f"ATTACH DATABASE ? AS {alias}", (str(target),))
        self.attached[alias] = (rel, path, target)
        try:
            if target == path:
                mode = conn.execute(f"PRAGMA {alias}.journal_mode=MEMORY").fetchone()[0]
                if str(mode).lower() != "memory":
                    raise sqlite3.DatabaseError(f"its journal mode stays {mode}")
            conn.execute(f"PRAGMA {alias}.cache_size=-{CACHE_KIB}")
            self.dirty.discard(alias)  # those pragmas write nothing to the file
            conn.execute(f"SELECT count(*) FROM {alias}.sqlite_master").fetchone()
        except sqlite3.DatabaseError:
            # Unreadable: detach it if SQLite lets us, else make the next use reopen.
            try:
                conn.execute(f"DETACH DATABASE {alias}")
                del self.attached[alias]
            except sqlite3.Error:
                self.attached[alias] = (rel, path.with_name(path.name + "-unreadable"), target)
            raise

    def _copy_if_needed(self, path: Path) -> Path:
        """The live file, or a scratch copy if reading it in place could write."""
        if path.is_relative_to(self.scratch) or not _writes_when_read(path):
            return path
        if path not in self.copies:
            from runner.engine.session import copy_database

            target = self.scratch / f"db{len(self.copies)}-{path.name}"
            copy_database(path, target)
            self.copies[path] = target
        return self.copies[path]

    # -- steps ---------------------------------------------------------------
    def begin_step(self) -> None:
        self._still_open().execute(f"SAVEPOINT {SAVEPOINT}")
        self._in_step = True

    def checkpoint(self) -> None:
        """What a run commits stays; a later failure of the step undoes back to here."""
        conn = self._still_open()
        conn.execute(f"RELEASE {SAVEPOINT}")
        conn.execute(f"SAVEPOINT {SAVEPOINT}")

    def commit_step(self) -> None:
        self._still_open().execute(f"RELEASE {SAVEPOINT}")
        self._in_step = False

    def undo_step(self) -> None:
        """Undo the step back to its start or last checkpoint."""
        if self.conn is None or not self._in_step:
            return
        self.conn.close_cursors()
        with contextlib.suppress(sqlite3.Error):
            self.conn.execute(f"ROLLBACK TO {SAVEPOINT}")
            self.conn.execute(f"RELEASE {SAVEPOINT}")
        self._in_step = False

    def end_step(self) -> None:
        """Drop the step's temporary tables, as a run's closed connection would."""
        if self.conn is None:
            return
        self.conn.close_cursors()
        with contextlib.suppress(sqlite3.Error):
            rows = self.conn.execute(
                "SELECT type, name FROM temp.sqlite_master WHERE type IN ('table', 'view')"
            ).fetchall()
            for kind, name in rows:
                quoted = '"' + name.replace('"', '""') + '"'
                self.conn.execute(f"DROP {kind.upper()} IF EXISTS temp.{quoted}")

    def close(self) -> None:
        """Roll everything back and close: the catalogs are as they were."""
        conn, self.conn = self.conn, None
        self.attached.clear()
        self.dirty.clear()
        self._in_step = False
        if conn is None:
            return
        conn.close_cursors()
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        conn.close()


def _writes_when_read(path: Path) -> bool:
    """True for a SQLite file in WAL mode (reading creates -wal and -shm files)
    or with a journal beside it (SQLite rolls a hot journal back on first read)."""
    for suffix in ("-journal", "-wal"):
        if path.with_name(path.name + suffix).exists():
            return True
    try:
        with open(path, "rb") as handle:
            header = handle.read(20)
    except OSError:
        return False  # attaching it will say what is wrong
    return header.startswith(b"SQLite format 3\0") and 2 in (header[18], header[19])
