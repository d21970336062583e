"""What the journal says: runs, their steps, states, counts and timings."""

from __future__ import annotations

import dataclasses
import sqlite3
from typing import Any

from runner.engine import journal
from runner.errors import SiteError
from runner.site import Site


def read_status(site: Site, limit: int = 5) -> list[dict[str, Any]]:
    path = site.state_dir / "journal.sqlite"
    if not path.exists():
        return []
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise SiteError(f"cannot open the journal {path}: {exc}") from exc
    try:
        conn.row_factory = sqlite3.Row
        runs = [
            dict(row)
            for row in conn.execute(
                "SELECT * FROM recover_runs ORDER BY started_at DESC, rowid DESC LIMIT ?", (limit,)
            )
        ]
        conn.row_factory = None
        for run in runs:
            run["steps"] = [
                dataclasses.asdict(rec) for rec in journal.read_steps(conn, run["run_id"]).values()
            ]
    except sqlite3.Error as exc:
        raise SiteError(
            f"the journal {path} is unreadable: {exc}",
            fix="a run may be in progress; try again, or move .recover/ aside",
        ) from exc
    finally:
        conn.close()
    return runs
