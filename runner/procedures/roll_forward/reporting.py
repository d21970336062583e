"""What a roll forward tells: summary, per-user recovery files, abort message.

Figures come from the rf_recovery tables (one row per transaction, committed
with each batch) and the checkpointed replay state, so a resumed run reports
exactly what an uninterrupted one would. Big listings are streamed from SQL.
"""

from __future__ import annotations

import csv
import io
import itertools
import sqlite3
from collections.abc import Iterator
from typing import Any

from runner.contract import StepContext
from runner.procedures.roll_forward.catalog import alias_for, database_rel, read_flags
from runner.procedures.roll_forward.logset import LogSet
from runner.procedures.roll_forward.media import iso_us
from runner.procedures.roll_forward.reader import ReplayState, last_record_info

REASONS = ("incomplete", "failed", "dependent", "stop_time")
REASON_TEXT = {
    "incomplete": "incomplete (no end record before the end of the log)",
    "failed": "failed on replay",
    "dependent": "failed on replay, depending on a suppressed change",
    "stop_time": "not completed by the stop time",
}
REPORT_DIR = "reports/rollforward"
BLOCK_LINES = 1000


def _empty() -> dict[str, int]:
    return {"applied": 0, "rolled_back": 0, "calls": 0, **dict.fromkeys(REASONS, 0)}


def collect(
    db: sqlite3.Connection, logset: LogSet, st: ReplayState, args: dict[str, Any]
) -> dict[str, Any]:
    """The figures of a (possibly partial) roll forward."""
    counts = _empty()
    per_db: dict[str, dict[str, int]] = {}
    examples: list[dict[str, Any]] = []
    for name, alias in st.targets.items():
        per = per_db[name] = _empty()
        if not _has_table(db, alias):
            continue
        for status, reason, n, calls in db.execute(
            f"SELECT status, coalesce(reason, ''), count(*), coalesce(sum(calls), 0) "
            f"FROM {alias}.rf_recovery WHERE logging_id = ? GROUP BY 1, 2",
            (logset.logging_id,),
        ):
            bucket = status if status in ("applied", "rolled_back") else reason
            per[bucket] += n
            counts[bucket] += n
            if status == "applied":
                per["calls"] += calls
                counts["calls"] += calls
        for txn, user, detail in db.execute(
            f"SELECT txn, user, detail FROM {alias}.rf_recovery WHERE logging_id = ? AND "
            "reason IN ('failed', 'dependent') ORDER BY end_record LIMIT 20",
            (logset.logging_id,),
        ):
            examples.append({"database": name, "txn": txn, "user": user, "detail": detail})
    suppressed = sum(counts[r] for r in REASONS)
    stop_at = args.get("stop_at")
    return {
        "log_set": logset.name,
        "logging_id": logset.logging_id,
        "databases": list(st.targets),
        "counts": counts,
        "suppressed": suppressed,
        "per_db": per_db,
        "other_txns": st.other_txns,
        "records": st.records,
        "files_read": [logset.rel(n) for n in st.files_read],
        "first_time": iso_us(st.first_us) if st.first_us is not None else None,
        "last_time": iso_us(st.last_us) if st.last_us is not None else None,
        "stop_at": str(stop_at) if stop_at else None,
        "stop": (st.stop or {}).get("kind", "incomplete"),
        "stop_detail": (st.stop or {}).get("detail", ""),
        "warnings": list(st.warnings),
        "last_record": int(st.pos[2]) - 1,
        "last_ok": _last_ok(st),
        "lost_examples": examples,
        "overrides": [o for o in ("no_stamp_check", "no_store_flag_check") if args.get(o)],
    }


def _last_ok(st: ReplayState) -> dict[str, Any] | None:
    if not st.last_ok:
        return None
    out = dict(st.last_ok)
    out["database"] = next(
        (n for n, a in st.targets.items() if a == out["database"]), out["database"]
    )
    out["end_time"] = iso_us(int(out["end_us"])) if out.get("end_us") is not None else None
    return out


def _has_table(db: sqlite3.Connection, alias: str) -> bool:
    row = db.execute(
        f"SELECT 1 FROM {alias}.sqlite_master WHERE type = 'table' AND name = 'rf_recovery'"
    ).fetchone()
    return row is not None


def one_line(s: dict[str, Any]) -> str:
    c = s["counts"]
    reasons = ", ".join(f"{r.replace('_', ' ')} {c[r]}" for r in REASONS if c[r])
    text = (
        f"re-applied {c['applied']:,} transaction(s) ({c['calls']:,} calls) to "
        f"{', '.join(s['databases'])}; suppressed {s['suppressed']:,}"
        + (f" ({reasons})" if reasons else "")
        + f"; read {s['records']:,} records from {len(s['files_read'])} file(s); "
        f"log time {s['first_time']} .. {s['last_time']}"
    )
    if s["stop_at"]:
        text += f" (stop time {s['stop_at']})"
    return text


def outputs(s: dict[str, Any]) -> dict[str, Any]:
    c = s["counts"]
    return {
        "applied": c["applied"],
        "calls_applied": c["calls"],
        "suppressed": s["suppressed"],
        "suppressed_by_reason": {r: c[r] for r in REASONS},
        "rolled_back": c["rolled_back"],
        "transactions_lost": c["failed"] + c["dependent"],
        "records_read": s["records"],
        "files_read": s["files_read"],
        "first_time": s["first_time"],
        "last_time": s["last_time"],
        "stop_at": s["stop_at"],
        "ended_by": s["stop"],
        "warnings": s["warnings"],
        "per_database": s["per_db"],
        "overrides": s["overrides"],
    }


_USER_FIELDS = (
    "txn",
    "program",
    "status",
    "coalesce(reason, '')",
    "begin_time",
    "coalesce(end_time, '-')",
    "first_record",
    "coalesce(end_record, '-')",
    "calls",
    "coalesce(detail, '')",
)
# The same fields joined by SQL into the line csv.writer would write, for rows whose
# free text needs no quoting (nearly all): one string per row built in C instead of
# ten Python values and a writerow. A row that might need quoting gets NULL here and
# is written by csv.writer, so the files stay exactly csv.writer's.
_PLAIN_LINE = (
    "CASE WHEN (program || coalesce(detail, '')) GLOB '*[,\"' || char(10) || char(13) || ']*' "
    "THEN NULL ELSE printf('"
    + ",".join(["%s"] * len(_USER_FIELDS))
    + "' || char(10), "
    + ", ".join(_USER_FIELDS)
    + ") END"
)


def _user_blocks(
    db: sqlite3.Connection, alias: str, logging_id: int, rows: Iterator[tuple[Any, ...]]
) -> Iterator[str]:
    """CSV lines in blocks: the sandboxed template then loops per block, not per row.

    `rows` are (user, line, txn); a NULL line is built by csv.writer from its row.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    fields = ", ".join(_USER_FIELDS)
    block: list[str] = []
    for _user, line, txn in rows:
        if line is None:
            row = db.execute(
                f"SELECT {fields} FROM {alias}.rf_recovery WHERE logging_id = ? AND txn = ?",
                (logging_id, txn),
            ).fetchone()
            writer.writerow(row)
            line = buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
        block.append(line)
        if len(block) == BLOCK_LINES:
            yield "".join(block)
            block = []
    if block:
        yield "".join(block)


def _users(db: sqlite3.Connection, alias: str, logging_id: int) -> list[dict[str, Any]]:
    # SQLite takes the bare columns of a max() aggregate from the row holding the max,
    # so one pass gives each user's last recovered transaction (where to resume).
    rows = db.execute(
        f"""SELECT user, group_concat(DISTINCT program),
               sum(status = 'applied'), sum(status = 'suppressed'), sum(status = 'rolled_back'),
               max(CASE WHEN status = 'applied' THEN end_record END), txn,
               end_time, first_record
            FROM {alias}.rf_recovery WHERE logging_id = ? GROUP BY user ORDER BY user""",
        (logging_id,),
    ).fetchall()
    return [
        {
            "user": user,
            "programs": programs,
            "applied": applied,
            "suppressed": suppressed,
            "rolled_back": rolled,
            "resume": {"txn": txn, "end": end, "first_record": first, "end_record": last_end}
            if last_end is not None
            else None,
        }
        for user, programs, applied, suppressed, rolled, last_end, txn, end, first in rows
    ]


def write_user_files(ctx: StepContext, s: dict[str, Any], targets: dict[str, str]) -> list[str]:
    written = []
    for name, alias in targets.items():
        if not _has_table(ctx.db, alias):
            continue
        users = _users(ctx.db, alias, s["logging_id"])
        # One scan in user order; each report consumes its user's rows from it.
        scan = ctx.db.execute(
            f"SELECT user, {_PLAIN_LINE}, txn FROM {alias}.rf_recovery "
            "WHERE logging_id = ? ORDER BY user, first_record",
            (s["logging_id"],),
        )
        groups = itertools.groupby(scan, key=lambda row: row[0])
        for info in users:
            user, rows = next(groups)
            assert user == info["user"]
            dest = f"{REPORT_DIR}/users/{name}.{_safe(info['user'])}.txt"
            written.append(
                ctx.report(
                    "roll_forward/user.txt.j2",
                    dest,
                    {
                        "database": name,
                        "summary": s,
                        "info": info,
                        "reasons": REASON_TEXT,
                        "blocks": _user_blocks(ctx.db, alias, s["logging_id"], rows),
                    },
                )
            )
    return written


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in text)[:60] or "unknown"


def write_reports(ctx: StepContext, s: dict[str, Any], user_files: bool) -> None:
    users = (
        write_user_files(ctx, s, {n: alias_for(n) for n in s["databases"]}) if user_files else []
    )
    ctx.report(
        "roll_forward/summary.txt.j2",
        f"{REPORT_DIR}/summary.txt",
        {"s": s, "reasons": REASON_TEXT, "user_files": users},
    )


def write_abort(
    ctx: StepContext,
    logset: LogSet,
    st: ReplayState,
    message: str,
    databases: list[str],
    user_files: bool,
    with_summary: bool,
) -> None:
    """The abort message with every field an operator needs to continue by hand."""
    dbs = []
    for name in databases:
        try:
            f = read_flags(ctx.db, alias_for(name), database_rel(name))
            dbs.append({"name": name, "open_count": f.open_count, "total_opens": f.total_opens})
        except Exception:
            dbs.append({"name": name, "open_count": "?", "total_opens": "?"})
    record = last_record_info(st)
    context = {
        "message": message,
        "databases": dbs,
        "log_file": logset.rel(int(st.pos[0])),
        "logging_id": logset.logging_id,
        "record_number": int(st.pos[2]) - 1,
        "record": record,
        "last_ok": _last_ok(st),
        "now": ctx.now.isoformat(timespec="seconds"),
    }
    ctx.report("roll_forward/abort.txt.j2", f"{REPORT_DIR}/abort.txt", context)
    ctx.warn("abort: " + message)
    if with_summary:
        s = collect(ctx.db, logset, st, {})
        write_reports(ctx, s, user_files)
