"""`cases.store`: copy the ingest files a store request names to the cache and
record them in a store session (a one-time request, or one update of a
continuous one)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any

from runner.contract import Check, Output, StepContext, declare_outputs
from runner.errors import StepFailed
from runner.procedures.case_archive import catalog
from runner.procedures.case_archive.actions.base import (
    CaseAction,
    check,
    clean_path,
    copy_verified,
    moment_arg,
)
from runner.procedures.case_archive.catalog import Settings

STORE_REPORT = "reports/cases-store.txt"

#: the ingest products a request selects: ?1 products JSON, ?2 from, ?3 to, ?4 now
_MATCH = """p.product IN (SELECT value FROM json_each(?1)) AND p.time >= ?2
            AND (?3 IS NULL OR p.time <= ?3) AND p.time <= ?4"""


class Store(CaseAction):
    name = "cases.store"
    summary = (
        "copy matching ingest files to the cache and record them in a store session "
        "(one-time, or one update of a continuous session)"
    )
    outputs = declare_outputs(
        session=Output("string", "store session name"),
        mode=Output("string", "store mode"),
        files_copied=Output("integer", "files copied to the cache"),
        files_shared=Output("integer", "files already stored for another session"),
        bytes_copied=Output("integer", "bytes copied to the cache"),
        session_files=Output("integer", "files the session holds"),
        session_bytes=Output("integer", "bytes the session holds"),
        cache_used=Output("integer", "cache bytes used"),
        cache_capacity=Output("integer", "cache capacity in bytes"),
        cache_percent=Output("number", "how full the cache is, in percent"),
        report=Output("string", "the report written"),
    )

    def _request(self, ctx: StepContext) -> tuple[str, str | None, str, str]:
        start = moment_arg(self.args["time_from"])
        assert start is not None
        return (
            json.dumps(sorted(self.args["products"])),
            moment_arg(self.args.get("time_to")),
            start,
            catalog.stamp(ctx.now),
        )

    def own_checks(self, ctx: StepContext) -> list[Check]:
        checks: list[Check] = []
        checks.append(self.lock_check(ctx))
        products, end, start, now = self._request(ctx)
        mode = self.args.get("mode", "one_time")
        row = ctx.db.execute(
            "SELECT mode, products, time_from, time_to FROM store_sessions WHERE name = ?",
            (self.args["session"],),
        ).fetchone()
        if row is not None:
            same = row[0] == mode == "continuous" and (row[1], row[2], row[3]) == (
                products,
                start,
                end,
            )
            checks.append(
                check(
                    "the session is new, or a continuous session with the same request",
                    same,
                    f"session {self.args['session']!r} exists ({row[0]}, products "
                    f"{', '.join(json.loads(row[1]))}, from {row[2]} to {row[3] or 'open'})",
                    fix="choose a new session name; only continuous sessions are updated, "
                    "with the same products and time range",
                ),
            )
        known = {
            r[0]
            for r in ctx.db.execute(
                "SELECT DISTINCT product FROM products "
                "WHERE product IN (SELECT value FROM json_each(?))",
                (products,),
            )
        }
        unknown = sorted(set(self.args["products"]) - known)
        checks.append(
            check(
                "the products exist on the ingest disk",
                not unknown,
                "unknown: " + ", ".join(unknown),
                fix="name products from the catalog's products table",
            )
        )
        settings = Settings(ctx.db)
        bad: list[str] = []
        absent: list[str] = []
        needed = 0
        for relpath, size in new_files(ctx.db, products, start, end, now):
            needed += size
            problem = clean_path(relpath, "ingest file")
            if problem:
                bad.append(problem)
            elif not ctx.media.exists(f"{settings.text('ingest_dir')}/{relpath}"):
                absent.append(relpath)
        checks.append(
            check(
                "ingest paths stay inside the ingest directory",
                not bad,
                "; ".join(bad[:5]),
                fix="correct the products table: paths are relative to the ingest directory",
            )
        )
        checks.append(
            check(
                "the matching ingest files are on the ingest disk",
                not absent,
                f"{len(absent)} missing, e.g. " + ", ".join(absent[:5]),
                fix="narrow the request, or remove the vanished files from the products table",
            )
        )
        used = catalog.cache_used(ctx.db)
        capacity = settings.number("cache_capacity")
        checks.append(
            check(
                "the cache has room",
                used + needed <= capacity,
                f"the cache holds {used:,} of {capacity:,} bytes; this request adds {needed:,}",
                fix="write the cache to tape first (cases.write_tape), or narrow the request",
            )
        )
        return checks

    def run(self, ctx: StepContext) -> None:
        self.urgent_pending(ctx)
        products, end, start, now = self._request(ctx)
        settings = Settings(ctx.db)
        self.take_lock(ctx, "cases.store")
        try:
            summary = self._store(ctx, settings, products, start, end, now)
        finally:
            self.release_lock(ctx)  # a failed store is not running any more
        self._finish(ctx, settings, summary, products, start, end)

    def _store(
        self,
        ctx: StepContext,
        settings: Settings,
        products: str,
        start: str,
        end: str | None,
        now: str,
    ) -> dict[str, Any]:
        ingest, cache = settings.text("ingest_dir"), settings.text("cache_dir")
        name = self.args["session"]
        session_id = _session(ctx, name, self.args.get("mode", "one_time"), products, start, end)
        before = int(ctx.db.execute("SELECT coalesce(max(id), 0) FROM files").fetchone()[0])
        ctx.db.execute(
            f"""INSERT INTO files (relpath, product, time, size, digest, location)
                SELECT p.relpath, p.product, p.time, p.size, p.digest, 'cache' FROM products p
                WHERE {_MATCH} AND NOT EXISTS (SELECT 1 FROM files f WHERE f.relpath = p.relpath)
                ORDER BY p.relpath""",
            (products, start, end, now),
        )
        copied, copied_bytes = ctx.db.execute(
            "SELECT count(*), coalesce(sum(size), 0) FROM files WHERE id > ?", (before,)
        ).fetchone()
        rows = ctx.db.execute(
            "SELECT relpath, size, digest FROM files WHERE id > ? ORDER BY id", (before,)
        )
        # Each copy's data is fsynced before its rename; the directories once each, before
        # the step commits the catalog rows that name the copies (a kill before that
        # rolls the rows back and a rerun copies again).
        ctx.media.hold_dir_syncs()
        try:
            for relpath, size, digest in ctx.progress(rows, copied, "files copied to the cache"):
                src = f"{ingest}/{relpath}"
                copy_verified(ctx, src, f"{cache}/{relpath}", size, digest, _changed(src, size))
        finally:
            ctx.media.sync_held_dirs()
        added = ctx.db.execute(
            f"""INSERT OR IGNORE INTO session_files (session_id, file_id)
                SELECT ?5, f.id FROM products p JOIN files f ON f.relpath = p.relpath
                WHERE {_MATCH}""",
            (products, start, end, now, session_id),
        ).rowcount
        total, total_bytes = ctx.db.execute(
            """SELECT count(*), coalesce(sum(f.size), 0) FROM session_files s
               JOIN files f ON f.id = s.file_id WHERE s.session_id = ?""",
            (session_id,),
        ).fetchone()
        shared = added - copied
        ctx.changed("files", "copied to cache", copied)
        ctx.changed("session_files", "added", added)
        used, capacity = catalog.cache_used(ctx.db), settings.number("cache_capacity")
        percent = 100 * used / capacity if capacity else 100.0
        return {
            "session": name,
            "mode": self.args.get("mode", "one_time"),
            "files_copied": copied,
            "bytes_copied": copied_bytes,
            "files_shared": shared,
            "session_files": total,
            "session_bytes": total_bytes,
            "cache_used": used,
            "cache_capacity": capacity,
            "cache_percent": round(percent, 1),
        }

    def _finish(
        self,
        ctx: StepContext,
        settings: Settings,
        summary: dict[str, Any],
        products: str,
        start: str,
        end: str | None,
    ) -> None:
        name, copied, shared = summary["session"], summary["files_copied"], summary["files_shared"]
        report = ctx.report(
            "case_archive/store.txt.j2",
            self.args.get("report", STORE_REPORT),
            {
                "now": ctx.now.isoformat(),
                "s": summary,
                "products": json.loads(products),
                "time_from": start,
                "time_to": end or "open",
            },
        )
        ctx.output(**summary, report=report)
        ctx.note(
            f"session {name!r}: {copied:,} file(s) ({summary['bytes_copied']:,} bytes) copied to "
            f"the cache, {shared:,} already stored for another session; the session holds "
            f"{summary['session_files']:,} files"
        )
        if summary["cache_percent"] >= settings.number("cache_warn_percent"):
            used, capacity = summary["cache_used"], summary["cache_capacity"]
            ctx.warn(
                f"the cache is {summary['cache_percent']:.0f}% full ({used:,} of {capacity:,} "
                "bytes): write it to "
                "tape soon (cases.write_tape); when it is full, store requests fail"
            )


def new_files(
    db: sqlite3.Connection, products: str, start: str, end: str | None, now: str
) -> sqlite3.Cursor:
    """(relative path, size) of the matching ingest files not stored yet (streamed)."""
    return db.execute(
        f"""SELECT p.relpath, p.size FROM products p WHERE {_MATCH}
            AND NOT EXISTS (SELECT 1 FROM files f WHERE f.relpath = p.relpath)
            ORDER BY p.relpath""",
        (products, start, end, now),
    )


def _session(
    ctx: StepContext, name: str, mode: str, products: str, start: str, end: str | None
) -> int:
    stamp = catalog.stamp(ctx.now)
    row = ctx.db.execute("SELECT id FROM store_sessions WHERE name = ?", (name,)).fetchone()
    if row is not None:
        ctx.db.execute("UPDATE store_sessions SET updated = ? WHERE id = ?", (stamp, row[0]))
        ctx.changed("store_sessions", "updated")
        return int(row[0])
    cursor = ctx.db.execute(
        """INSERT INTO store_sessions (name, products, time_from, time_to, mode, created, updated)
           VALUES (?, ?, ?, ?, ?, ?, ?)""",
        (name, products, start, end, mode, stamp, stamp),
    )
    ctx.changed("store_sessions", "created")
    assert cursor.lastrowid is not None
    return int(cursor.lastrowid)


def _changed(src: str, size: int) -> Callable[[int], Exception]:
    def error(seen: int) -> Exception:
        return StepFailed(
            f"ingest file {src} does not match the catalog ({seen:,} bytes, expected "
            f"{size:,}, or a different digest); nothing was stored",
            fix="the file changed after ingest: re-ingest it or fix the products table",
        )

    return error
