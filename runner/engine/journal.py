"""The journal: which runs and steps happened, with their counts and state.

Like sqlite-utils' migrations table: named, ordered steps, each recorded in
the same transaction as its work, so the journal never claims more (or less)
than what the catalogs hold. It lives in `<site>/.recover/journal.sqlite` and
is the `main` database of every step's connection; catalogs are attached.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import weakref
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

from runner.errors import SiteError

SCHEMA = """
CREATE TABLE IF NOT EXISTS recover_runs (
    run_id TEXT PRIMARY KEY,
    run_key TEXT NOT NULL,
    playbook TEXT NOT NULL,
    playbook_name TEXT NOT NULL,
    playbook_sha TEXT NOT NULL,
    params_json TEXT NOT NULL,
    state TEXT NOT NULL,            -- running | done | failed | refused | interrupted
    clock TEXT NOT NULL,            -- the run's fixed 'now', kept across resume
    started_at TEXT NOT NULL,
    finished_at TEXT,
    host TEXT, pid INTEGER, user TEXT,
    plan_fingerprint TEXT,
    error TEXT
);
CREATE TABLE IF NOT EXISTS recover_steps (
    run_id TEXT NOT NULL REFERENCES recover_runs(run_id),
    step_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    action TEXT NOT NULL,
    state TEXT NOT NULL,  -- pending|running|done|skipped|failed|refused|interrupted
    started_at TEXT, finished_at TEXT,
    seconds REAL NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    changes_json TEXT NOT NULL DEFAULT '{}',
    loss_json TEXT NOT NULL DEFAULT '{}',
    loss_examples_json TEXT NOT NULL DEFAULT '[]',
    outputs_json TEXT NOT NULL DEFAULT '{}',
    notes_json TEXT NOT NULL DEFAULT '[]',
    media_json TEXT NOT NULL DEFAULT '[]',
    reports_json TEXT NOT NULL DEFAULT '[]',
    state_json TEXT NOT NULL DEFAULT '{}',
    error TEXT,
    media_log_json TEXT NOT NULL DEFAULT '{}',  -- the media log as of the last commit
    PRIMARY KEY (run_id, step_id)
);
"""


class StepState(StrEnum):
    """Where a step is; the journal stores (and JSON shows) the value text."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"
    REFUSED = "refused"
    INTERRUPTED = "interrupted"

    @property
    def finished(self) -> bool:
        """Done or skipped: a resumed run leaves it be, and later steps may use it."""
        return self in (StepState.DONE, StepState.SKIPPED)


class RunState(StrEnum):
    """Where a run is, as its journal row says."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    REFUSED = "refused"
    INTERRUPTED = "interrupted"


@dataclass
class StepRecord:
    """What one step did (or, in a plan, would do)."""

    step_id: str
    position: int
    action: str
    state: StepState = StepState.PENDING
    seconds: float = 0.0
    attempts: int = 0
    changes: dict[str, dict[str, int]] = field(default_factory=dict)
    loss: dict[str, int] = field(default_factory=dict)
    loss_examples: list[str] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    notes: list[dict[str, str]] = field(default_factory=list)
    media: list[str] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)
    state_data: dict[str, Any] = field(default_factory=dict)
    #: the step's media log as of its last commit, so a resumed step's media
    #: summary covers every attempt (runner.engine.media.MediaLog.to_json)
    media_log: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    started_at: str | None = None
    finished_at: str | None = None

    def __post_init__(self) -> None:
        self.state = StepState(self.state)  # also accepts the stored text


class TrackedConnection(sqlite3.Connection):
    """A connection that closes its cursors when it closes.

    Since Python 3.11, closing a connection while a cursor still has a pending
    statement (an action iterating rows when it failed, a report template
    that stopped half-way) leaves a zombie that keeps its read lock until the
    cursor is garbage collected, and the failure can then not be journaled.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cursors: weakref.WeakSet[sqlite3.Cursor] = weakref.WeakSet()

    def cursor(self, factory: Any = sqlite3.Cursor) -> Any:
        cur = super().cursor(factory)
        self._cursors.add(cur)
        return cur

    # Connection.execute* create their cursors in C without calling cursor().
    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
        return self.cursor().executemany(sql, parameters)

    def close_cursors(self) -> None:
        for cur in list(self._cursors):
            cur.close()

    def close(self) -> None:
        self.close_cursors()
        super().close()


def connect(path: Path, shown_as: Path | None = None) -> TrackedConnection:
    """A connection whose main db is the journal, in explicit-transaction mode.

    `shown_as` names the journal in errors when `path` is a plan's scratch copy."""
    shown = shown_as or path
    remove_stale_super_journals(path)
    try:
        conn = sqlite3.connect(path, isolation_level=None, timeout=30, factory=TrackedConnection)
    except sqlite3.Error as exc:
        raise journal_error(exc, shown) from exc
    try:
        conn.execute("PRAGMA journal_mode=DELETE")  # multi-file commits stay atomic
        conn.execute("PRAGMA synchronous=FULL")
        # temp_store stays FILE (SQLite's default): sorts, GROUP BY and temporary
        # indexes over a catalog then spill to temporary files past the page cache
        # instead of growing memory with the catalog (with MEMORY, an assessment's
        # peak went from 60 MB at 1.25M locations to 130 MB at 5M).
        conn.executescript(SCHEMA)
        _upgrade(conn)
    except sqlite3.Error as exc:
        conn.close()
        raise journal_error(exc, shown) from exc
    return conn


def journal_error(exc: sqlite3.Error, shown: Path) -> SiteError:
    """What went wrong with the journal, and the fix that keeps what resume needs.

    Only a journal that is not a database at all may be moved aside; a full
    disk or a read-only site is fixed outside the site, and the journal kept."""
    name = getattr(exc, "sqlite_errorname", "")
    if name == "SQLITE_FULL":
        return SiteError(
            f"no space left on the device holding {shown.parent}",
            fix="free space there and run the same command again (the journal is kept; "
            "the run resumes where it stopped)",
        )
    if name.startswith("SQLITE_READONLY") or name.startswith("SQLITE_CANTOPEN"):
        return SiteError(
            f"the run journal {shown} cannot be written: {exc} (is the site read-only?)",
            fix="make the site writable (remount it read-write, or fix its permissions) "
            "and run again",
        )
    if name in ("SQLITE_CORRUPT", "SQLITE_NOTADB"):
        return SiteError(
            f"the run journal {shown} is unreadable: {exc}",
            fix=f"move {shown.parent} aside (it holds only the runner's own records); the "
            "catalogs and media are not affected",
        )
    return SiteError(
        f"the run journal {shown} cannot be used: {exc}",
        fix="check the disk and the site's permissions, then run again",
    )


def remove_stale_super_journals(path: Path) -> None:
    """Remove super-journals (`journal.sqlite-mj*`) that no commit needs any more.

    SQLite writes one when a transaction spans the journal and attached
    catalogs; a kill at the wrong moment can leave it behind. It lists the
    databases' own rollback journals; SQLite itself treats it as stale once
    none of those exists, and so does this (it never removes one that a hot
    journal still names, which recovery needs).
    """
    for candidate in path.parent.glob(f"{path.name}-mj*"):
        try:
            named = [n for n in candidate.read_bytes().split(b"\0") if n]
        except OSError:
            continue
        if any(Path(os.fsdecode(name)).exists() for name in named):
            continue
        with contextlib.suppress(OSError):
            candidate.unlink()


def write_step(conn: sqlite3.Connection, run_id: str, rec: StepRecord) -> None:
    conn.execute(
        """INSERT INTO main.recover_steps (run_id, step_id, position, action, state, started_at,
               finished_at, seconds, attempts, changes_json, loss_json, loss_examples_json,
               outputs_json, notes_json, media_json, reports_json, state_json, error,
               media_log_json)
           VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
           ON CONFLICT (run_id, step_id) DO UPDATE SET
               state=excluded.state, started_at=excluded.started_at,
               finished_at=excluded.finished_at, seconds=excluded.seconds,
               attempts=excluded.attempts, changes_json=excluded.changes_json,
               loss_json=excluded.loss_json, loss_examples_json=excluded.loss_examples_json,
               outputs_json=excluded.outputs_json, notes_json=excluded.notes_json,
               media_json=excluded.media_json, reports_json=excluded.reports_json,
               state_json=excluded.state_json, error=excluded.error,
               media_log_json=excluded.media_log_json""",
        (
            run_id,
            rec.step_id,
            rec.position,
            rec.action,
            rec.state,
            rec.started_at,
            rec.finished_at,
            rec.seconds,
            rec.attempts,
            dump(rec.changes),
            dump(rec.loss),
            dump(rec.loss_examples),
            dump(rec.outputs),
            dump(rec.notes),
            dump(rec.media),
            dump(rec.reports),
            dump(rec.state_data),
            rec.error,
            dump(rec.media_log),
        ),
    )


def read_steps(conn: sqlite3.Connection, run_id: str) -> dict[str, StepRecord]:
    # A journal from before media_log_json (read only, so not upgraded) reads as '{}'.
    media_log = "media_log_json" if _has_media_log(conn) else "'{}'"
    rows = conn.execute(
        f"""SELECT step_id, position, action, state, seconds, attempts, changes_json, loss_json,
                  loss_examples_json, outputs_json, notes_json, media_json, reports_json,
                  state_json, error, started_at, finished_at, {media_log}
           FROM main.recover_steps WHERE run_id = ? ORDER BY position""",
        (run_id,),
    ).fetchall()
    return {
        row[0]: StepRecord(
            step_id=row[0],
            position=row[1],
            action=row[2],
            state=StepState(row[3]),
            seconds=row[4],
            attempts=row[5],
            changes=json.loads(row[6]),
            loss=json.loads(row[7]),
            loss_examples=json.loads(row[8]),
            outputs=json.loads(row[9]),
            notes=json.loads(row[10]),
            media=json.loads(row[11]),
            reports=json.loads(row[12]),
            state_data=json.loads(row[13]),
            error=row[14],
            started_at=row[15],
            finished_at=row[16],
            media_log=json.loads(row[17]),
        )
        for row in rows
    }


def _has_media_log(conn: sqlite3.Connection) -> bool:
    columns = conn.execute("PRAGMA main.table_info(recover_steps)").fetchall()
    return any(column[1] == "media_log_json" for column in columns)


def _upgrade(conn: sqlite3.Connection) -> None:
    """Bring a journal written by an earlier release up to SCHEMA (sqlite-utils'
    add_column; imported only then, as it costs every command ~0.1 s to load)."""
    if _has_media_log(conn):
        return
    import sqlite_utils

    steps = sqlite_utils.Database(conn).table("recover_steps")
    steps.add_column("media_log_json", str, not_null_default="{}")


@dataclass
class RunRecord:
    """One row of `recover_runs`; the fields are its columns, in their order."""

    run_id: str
    run_key: str
    playbook: str
    playbook_name: str
    playbook_sha: str
    params_json: str
    state: RunState
    clock: str  # the run's fixed 'now', kept across resume
    started_at: str
    finished_at: str | None = None
    host: str | None = None
    pid: int | None = None
    user: str | None = None
    plan_fingerprint: str | None = None
    error: str | None = None

    def __post_init__(self) -> None:
        self.state = RunState(self.state)  # also accepts the stored text

    def as_row(self) -> dict[str, Any]:
        """The columns by name, as `recover status --json` shows them."""
        return asdict(self)


RUN_COLUMNS = ", ".join(f.name for f in fields(RunRecord))


def _run_from(row: tuple[Any, ...]) -> RunRecord:
    return RunRecord(*row)


def insert_run(conn: sqlite3.Connection, run: RunRecord) -> None:
    values = tuple(run.as_row().values())
    conn.execute(
        f"INSERT INTO main.recover_runs ({RUN_COLUMNS}) VALUES ({','.join('?' * len(values))})",
        values,
    )


def latest_run(conn: sqlite3.Connection, run_key: str) -> RunRecord | None:
    """The newest run of this playbook+params, if any."""
    row = conn.execute(
        f"SELECT {RUN_COLUMNS} FROM main.recover_runs WHERE run_key = ? "
        "ORDER BY started_at DESC, rowid DESC LIMIT 1",
        (run_key,),
    ).fetchone()
    return _run_from(row) if row else None


def recent_runs(conn: sqlite3.Connection, limit: int) -> list[RunRecord]:
    """The newest `limit` runs of any playbook, newest first."""
    rows = conn.execute(
        f"SELECT {RUN_COLUMNS} FROM main.recover_runs ORDER BY started_at DESC, rowid DESC LIMIT ?",
        (limit,),
    ).fetchall()
    return [_run_from(row) for row in rows]


def claim_run(conn: sqlite3.Connection, run_id: str, pid: int) -> None:
    """This process is now running (or resuming) the run."""
    conn.execute(
        "UPDATE main.recover_runs SET state = ?, pid = ? WHERE run_id = ?",
        (RunState.RUNNING, pid, run_id),
    )


def set_run_state(
    conn: sqlite3.Connection,
    run_id: str,
    state: RunState,
    finished_at: str | None,
    error: str | None = None,
) -> None:
    conn.execute(
        "UPDATE main.recover_runs SET state = ?, finished_at = ?, error = ? WHERE run_id = ?",
        (state, finished_at, error, run_id),
    )


def dump(value: Any) -> str:
    """JSON text as the journal stores it (sorted keys, anything else as str)."""
    return json.dumps(value, sort_keys=True, default=str)


def connect_readonly(path: Path) -> sqlite3.Connection:
    """The journal opened read-only: reading it never creates or changes a byte."""
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def peek(path: Path, run_key: str) -> tuple[RunRecord | None, dict[str, StepRecord]]:
    """The latest run of a key and its steps, read without creating or changing anything."""
    if not path.exists():
        return None, {}
    conn = connect_readonly(path)
    try:
        latest = latest_run(conn, run_key)
        return latest, (read_steps(conn, latest.run_id) if latest else {})
    except sqlite3.Error:
        return None, {}
    finally:
        conn.close()
