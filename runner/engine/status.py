"""What the journal says: runs, their steps, states, counts and timings."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from typing import Any

from runner.engine import journal
from runner.engine.request import run_key
from runner.engine.selection import latest_finished
from runner.engine.session import Request
from runner.errors import SiteError
from runner.site import Site


def read_status(site: Site, limit: int = 5) -> list[dict[str, Any]]:
    """The newest runs as plain rows (their columns, then `steps`), for text or JSON."""
    path = site.state_dir / "journal.sqlite"
    if not path.exists():
        return []
    try:
        conn = journal.connect_readonly(path)
    except sqlite3.Error as exc:
        raise SiteError(f"cannot open the journal {path}: {exc}") from exc
    try:
        runs = []
        for record in journal.recent_runs(conn, limit):
            runs.append(_run_row(conn, record))
    except sqlite3.Error as exc:
        raise SiteError(
            f"the journal {path} is unreadable: {exc}",
            fix="a run may be in progress; try again, or move .recover/ aside",
        ) from exc
    finally:
        conn.close()
    return runs


def _run_row(conn: sqlite3.Connection, record: journal.RunRecord) -> dict[str, Any]:
    """A run's columns (its params as an object, in place of their JSON text), then its steps."""
    run: dict[str, Any] = {}
    for key, value in record.as_row().items():
        if key == "params_json":
            run["params"] = json.loads(value)
        else:
            run[key] = value
    run["steps"] = [
        dataclasses.asdict(rec) for rec in journal.read_steps(conn, record.run_id).values()
    ]
    return run


def read_run(site: Site, run_id: str) -> dict[str, Any]:
    """One run as `recover status --json` shows it (for `recover run --json`)."""
    conn = journal.connect_readonly(site.state_dir / "journal.sqlite")
    try:
        row = conn.execute(
            f"SELECT {journal.RUN_COLUMNS} FROM main.recover_runs WHERE run_id = ?", (run_id,)
        ).fetchone()
        if row is None:
            raise SiteError(f"run {run_id} is not in the journal")
        return _run_row(conn, journal.RunRecord(*row))
    finally:
        conn.close()


def journal_states(request: Request) -> dict[str, str]:
    """Each step's state for this request: its run's record, else (a step the
    run has not reached or did not select) the newest finished record of a run
    of the same playbook and params, as `done (run ID)`. Read-only."""
    path = request.site.state_dir / "journal.sqlite"
    latest, records = journal.peek(path, run_key(request))
    states = {step_id: str(rec.state) for step_id, rec in records.items()}
    others = latest_finished(
        path, request.playbook, request.params, {s.id for s in request.playbook.steps}
    )
    for step_id, (run_id, rec) in others.items():
        mine = step_id in states and records[step_id].state.finished
        if not mine and (latest is None or run_id != latest.run_id):
            states[step_id] = f"{rec.state} (run {run_id})"
    return states
