"""The expected outcome of a generated site: what a correct roll forward finds.

The truth is computed here in plain dicts, independently of the runner's SQL,
applying each completed transaction the way the rules say (a failing call
suppresses its whole transaction), for the end of the log and for the stop
case; it goes to scenario.json and, as databases, to expected/ and
expected-stop/.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.procedures.roll_forward import media as m
from runner.procedures.roll_forward.world.workload import (
    DEFAULT_DATABASES,
    SCHEMAS,
    SET_NAME,
    TxnPlan,
    columns,
)

if TYPE_CHECKING:
    from runner.procedures.roll_forward.world.generator import Options


class Truth:
    """The databases as the rules say they end up, kept in dicts."""

    def __init__(self, initial: dict[str, dict[str, dict[int, list[Any]]]]) -> None:
        self.tables = {db: {t: dict(rows) for t, rows in ts.items()} for db, ts in initial.items()}

    def apply(self, plan: TxnPlan) -> bool:
        """Apply a completed transaction all or nothing; False if a call fails."""
        undo: list[tuple[str, int, list[Any] | None]] = []
        for rtype, table, key, cols, values in plan.calls:
            rows = self.tables[plan.db][table]
            old = rows.get(key)
            if rtype == m.PUT and old is None:
                rows[key] = list(values)
            elif rtype == m.UPDATE and old is not None:
                new = list(old)
                for col, value in zip(cols, values, strict=True):
                    new[columns(plan.db, table).index(col)] = value
                rows[key] = new
            elif rtype == m.DELETE and old is not None:
                del rows[key]
            else:
                for t, k, row in reversed(undo):
                    if row is None:
                        self.tables[plan.db][t].pop(k, None)
                    else:
                        self.tables[plan.db][t][k] = row
                return False
            undo.append((table, key, old))
        return True


def outcome(
    opt: Options,
    plans: list[TxnPlan],
    initial: dict[str, Any],
    records: int,
    last_time_us: int,
    logging_id: int,
    root: Path,
) -> dict[str, Any]:
    committed = sorted((p for p in plans if p.outcome == "committed"), key=lambda p: p.end_seq or 0)
    stop_plan = committed[len(committed) // 2]
    stop_us = stop_plan.end_us
    assert stop_us is not None
    result: dict[str, Any] = {}
    for label, limit in (("full", None), ("stop", stop_us)):
        truth = Truth(initial)
        per_db: dict[str, dict[str, int]] = {
            db: {
                "applied": 0,
                "failed": 0,
                "dependent": 0,
                "incomplete": 0,
                "stop_time": 0,
                "rolled_back": 0,
            }
            for db in SCHEMAS
        }
        dependent: list[int] = []
        for plan in plans:
            done = plan.end_us is not None and (limit is None or plan.end_us <= limit)
            if not done:
                if limit is None or plan.begin_us <= limit:
                    per_db[plan.db]["stop_time" if limit is not None else "incomplete"] += 1
                continue
            if plan.outcome == "rolled_back":
                per_db[plan.db]["rolled_back"] += 1
        for plan in committed:
            if limit is not None and (plan.end_us or 0) > limit:
                continue
            if truth.apply(plan):
                per_db[plan.db]["applied"] += 1
            else:
                per_db[plan.db]["dependent"] += 1
                dependent.append(plan.txn)
        result[label] = {"per_db": per_db, "dependent": dependent, "truth": truth.tables}
    files = sorted(p.name for p in (root / "logs").glob(f"{SET_NAME}.*.log"))
    return {
        "seed": opt.seed,
        "transactions": opt.transactions,
        "log_set": SET_NAME,
        "logging_id": logging_id,
        "files": files,
        "databases": sorted(SCHEMAS),
        "default_databases": list(DEFAULT_DATABASES),
        "not_enabled_for_recovery": ["audit"],
        "records": records,
        "last_time": m.iso_us(last_time_us),
        "tail": opt.tail,
        "crash_record": opt.crash_record,
        "dropped_file": m.log_name(SET_NAME, opt.drop_log_file) if opt.drop_log_file else None,
        "mismatch_stamp": opt.mismatch_stamp,
        "foreign_backup": opt.foreign_backup,
        "expected": {
            "per_db": result["full"]["per_db"],
            "dependent_txns": result["full"]["dependent"],
        },
        "stop_case": {
            "stop_at": m.from_us(stop_us).isoformat(timespec="microseconds"),
            "per_db": result["stop"]["per_db"],
        },
        "_truth": result["full"]["truth"],
        "_truth_stop": result["stop"]["truth"],
    }
