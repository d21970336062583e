"""What the journal says: runs, their steps, states, counts and timings."""

from __future__ import annotations

import dataclasses
import sqlite3
from typing import Any

from runner.engine import journal
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
            run = record.as_row()
            run["steps"] = [
                dataclasses.asdict(rec) for rec in journal.read_steps(conn, record.run_id).values()
            ]
            runs.append(run)
    except sqlite3.Error as exc:
        raise SiteError(
            f"the journal {path} is unreadable: {exc}",
            fix="a run may be in progress; try again, or move .recover/ aside",
        ) from exc
    finally:
        conn.close()
    return runs
