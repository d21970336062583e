"""`cases.restore` (a store session into a case directory) and `cases.delete_case`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, BinaryIO

from runner.contract import Check, Output, StepContext, declare_outputs
from runner.errors import SiteError
from runner.procedures.case_archive import catalog, media
from runner.procedures.case_archive.actions.base import (
    CaseAction,
    case_directory,
    check,
    copy_verified,
    moment_arg,
    window_check,
)
from runner.procedures.case_archive.actions.tapes import tape_checks, tape_path
from runner.procedures.case_archive.catalog import Settings

RESTORE_REPORT = "reports/cases-restore.txt"
KEEP_PROBLEMS = 1000  # listed in the report; all are counted

#: the session's files a request selects: ?1 session, ?2 products JSON or NULL, ?3 from, ?4 to
_SELECT = """FROM session_files sf JOIN store_sessions s ON s.id = sf.session_id
             JOIN files f ON f.id = sf.file_id LEFT JOIN backups b ON b.id = f.backup_id
             WHERE s.name = ?1
               AND (?2 IS NULL OR f.product IN (SELECT value FROM json_each(?2)))
               AND (?3 IS NULL OR f.time >= ?3) AND (?4 IS NULL OR f.time <= ?4)"""


class Restore(CaseAction):
    name = "cases.restore"
    summary = (
        "restore a store session (or some of its products and times) into a case directory, "
        "from the cache or the tape holding it"
    )
    outputs = declare_outputs(
        case=Output("string", "case name"),
        directory=Output("string", "directory restored into"),
        session=Output("string", "store session restored from"),
        tape=Output("string or null", "tape read from, if any"),
        files=Output("integer", "files restored"),
        bytes=Output("integer", "bytes restored"),
        links=Output("integer", "links to common data made"),
        from_cache=Output("integer", "files read from the cache"),
        from_tape=Output("integer", "files read from tape"),
        missing=Output("integer", "files missing (not restored)"),
        corrupt=Output("integer", "files corrupt (not restored)"),
        report=Output("string", "the report written"),
    )

    def _params(self) -> tuple[str, str | None, str | None, str | None]:
        products = self.args.get("products") or None
        return (
            self.args["session"],
            json.dumps(sorted(products)) if products else None,
            moment_arg(self.args.get("time_from")),
            moment_arg(self.args.get("time_to")),
        )

    def directory(self, ctx: StepContext) -> str:
        return case_directory(Settings(ctx.db).text("restore_dir"), self.args["case"])

    def own_checks(self, ctx: StepContext) -> list[Check]:
        checks: list[Check] = []
        settings = Settings(ctx.db)
        params = self._params()
        known = ctx.db.execute(
            "SELECT 1 FROM store_sessions WHERE name = ?", (params[0],)
        ).fetchone()
        checks.append(
            check(
                "the store session exists",
                known is not None,
                f"no store session {params[0]!r}",
                fix="name a session from the store_sessions table (sessions on a "
                "re-initialised tape are gone)",
            )
        )
        if known is None:
            return checks
        files, size = ctx.db.execute(
            f"SELECT count(*), coalesce(sum(f.size), 0) {_SELECT}", params
        ).fetchone()
        checks.append(
            check(
                "the request selects files",
                files > 0,
                "no file of the session matches the products and time range",
                fix="widen the products or the time range",
            )
        )
        name, directory = self.args["case"], self.directory(ctx)
        taken = ctx.db.execute(
            "SELECT 1 FROM cases WHERE name = ? OR directory = ?", (name, directory)
        ).fetchone()
        checks.append(
            check(
                "the case is new",
                taken is None,
                f"case {name!r} ({directory}) exists",
                fix="choose another case name, or delete the case first (cases.delete_case)",
            )
        )
        outside = []
        for common in settings.common_dirs():
            try:
                ctx.site.path(common, what="common data directory")
            except SiteError as exc:
                outside.append(exc.message)
        checks.append(
            check(
                "the common data links stay inside the site",
                not outside,
                "; ".join(outside),
                fix="set common_dirs to directories inside the site (see docs/case_archive.md)",
            )
        )
        capacity, used = settings.number("restore_capacity"), catalog.restore_used(ctx.db)
        checks.append(
            check(
                "the restore disk has room",
                used + size <= capacity,
                f"the restore needs {size:,} bytes ({files:,} files); {capacity - used:,} of "
                f"{capacity:,} are free",
                fix="delete cases no longer needed (cases.delete_case), or restore fewer "
                "products or a shorter time range",
            )
        )
        needed = [
            (r[0], r[1])
            for r in ctx.db.execute(
                f"""SELECT DISTINCT b.tape, (SELECT t.state FROM tapes t WHERE t.label = b.tape)
                    {_SELECT} AND f.location = 'tape' ORDER BY b.tape""",
                params,
            )
        ]
        if needed:
            checks += self._tape_checks(ctx, settings, needed)
        return checks

    def _tape_checks(
        self, ctx: StepContext, settings: Settings, needed: list[tuple[str, str]]
    ) -> list[Check]:
        """One drive: the one tape the data is on must be the loaded one."""
        window = settings.text("tape_window")
        checks = [window_check(window, "the data is on tape; ")]
        loaded = settings.text("loaded_tape")
        current = catalog.current_tape(ctx.db)
        if len(needed) > 1:
            labels = ", ".join(label for label, _ in needed)
            checks.append(
                check(
                    "the data is on one tape",
                    False,
                    f"the selection spans tapes {labels}",
                    fix="restore it in parts (products or time range), loading each tape",
                )
            )
            return checks
        label, state = needed[0]
        back = f"; put the current tape {current[0]} back afterwards" if current else ""
        checks.append(
            check(
                "the tape holding the data is loaded",
                loaded == label,
                f"the data is on {state} tape {label}; {loaded or 'no tape'} is loaded",
                fix=f"load tape {label} (cases.load_tape label: {label})"
                + (back if state == "old" else ""),
            )
        )
        if loaded == label:
            checks += tape_checks(ctx, label)
        return checks

    def run(self, ctx: StepContext) -> None:
        self.urgent_pending(ctx)
        settings = Settings(ctx.db)
        params = self._params()
        directory = self.directory(ctx)
        cache, tape_label = settings.text("cache_dir"), None
        files = int(ctx.db.execute(f"SELECT count(*) {_SELECT}", params).fetchone()[0])
        rows = ctx.db.execute(
            f"""SELECT f.relpath, f.size, f.digest, f.location, b.tape, f.tape_offset {_SELECT}
                ORDER BY f.location, f.tape_offset, f.relpath""",
            params,
        )
        counts = {"files": 0, "bytes": 0, "from_cache": 0, "from_tape": 0}
        problems: list[dict[str, str]] = []
        missing = corrupt = 0
        handle: BinaryIO | None = None
        # Directories are fsynced once each, before the step commits the case (see store).
        ctx.media.hold_dir_syncs()
        try:
            for relpath, size, digest, location, label, offset in ctx.progress(
                rows, files, "files restored"
            ):
                target = f"{directory}/{relpath}"
                try:
                    if location == "cache":
                        _from_cache(ctx, f"{cache}/{relpath}", target, size, digest)
                    else:
                        if handle is None:
                            tape_label = label
                            handle = ctx.media.open(tape_path(settings, label))
                        _from_tape(ctx, handle, offset, target, relpath, digest, label)
                except _Missing as exc:
                    missing += 1
                    if len(problems) < KEEP_PROBLEMS:
                        problems.append({"file": relpath, "problem": "missing", "detail": str(exc)})
                    continue
                except media.CorruptRecord as exc:
                    corrupt += 1
                    if len(problems) < KEEP_PROBLEMS:
                        problems.append(
                            {"file": relpath, "problem": "corrupt", "detail": exc.message}
                        )
                    continue
                counts["files"] += 1
                counts["bytes"] += size
                counts["from_cache" if location == "cache" else "from_tape"] += 1
            for common in settings.common_dirs():
                ctx.media.symlink(f"{directory}/{common.rsplit('/', 1)[-1]}", common)
        finally:
            if handle is not None:
                handle.close()
            ctx.media.sync_held_dirs()
        ctx.db.execute(
            """INSERT INTO cases (name, directory, session, files, bytes, in_use, restored)
               VALUES (?, ?, ?, ?, ?, 0, ?)""",
            (
                self.args["case"],
                directory,
                params[0],
                counts["files"],
                counts["bytes"],
                catalog.stamp(ctx.now),
            ),
        )
        ctx.changed("cases", "restored")
        summary: dict[str, Any] = {
            **counts,
            "case": self.args["case"],
            "session": params[0],
            "directory": directory,
            "tape": tape_label,
            "missing": missing,
            "corrupt": corrupt,
            "links": len(settings.common_dirs()),
        }
        report = ctx.report(
            "case_archive/restore.txt.j2",
            self.args.get("report", RESTORE_REPORT),
            {
                "now": ctx.now.isoformat(),
                "s": summary,
                "products": json.loads(params[1]) if params[1] else [],
                "time_from": params[2] or "",
                "time_to": params[3] or "",
                "problems": problems,
                "common_dirs": settings.common_dirs(),
            },
        )
        ctx.output(**summary, report=report)
        ctx.note(
            f"case {self.args['case']!r} restored into {directory}: {counts['files']:,} file(s), "
            f"{counts['bytes']:,} bytes ({counts['from_cache']:,} from the cache, "
            f"{counts['from_tape']:,} from tape{' ' + tape_label if tape_label else ''})"
        )
        if missing or corrupt:
            ctx.warn(
                f"{missing:,} file(s) missing and {corrupt:,} corrupt were not restored: see "
                f"{report}"
            )


class _Missing(Exception):
    pass


def _from_cache(ctx: StepContext, src: str, dst: str, size: int, digest: str) -> None:
    if not ctx.media.exists(src):
        raise _Missing(f"{src} is not in the cache")
    copy_verified(
        ctx, src, dst, size, digest, lambda _seen: media.CorruptRecord(f"{src} fails its digest")
    )


def _from_tape(
    ctx: StepContext,
    handle: BinaryIO,
    offset: int,
    dst: str,
    relpath: str,
    digest: str,
    label: str,
) -> None:
    with ctx.media.writer(dst, source=f"tape {label}@{offset}") as out:
        info = media.read_record(handle, offset, f"tape {label}", out)
        if info.relpath != relpath or info.digest != digest:
            raise media.CorruptRecord(
                f"tape {label}: the record at {offset} holds {info.relpath}, not {relpath}"
            )


class DeleteCase(CaseAction):
    name = "cases.delete_case"
    summary = "delete a restored case directory (refused while the case is in use)"
    destructive = True
    outputs = declare_outputs(
        case=Output("string", "case name"),
        directory=Output("string", "directory removed"),
        files_removed=Output("integer", "files removed"),
    )

    def own_checks(self, ctx: StepContext) -> list[Check]:
        checks: list[Check] = []
        row = ctx.db.execute(
            "SELECT in_use FROM cases WHERE name = ?", (self.args["case"],)
        ).fetchone()
        checks.append(
            check(
                "the case exists",
                row is not None,
                f"no case {self.args['case']!r}",
                fix="name a case from the cases table",
            )
        )
        if row is not None:
            checks.append(
                check(
                    "the case is not in use",
                    not row[0],
                    f"case {self.args['case']!r} is being displayed",
                    fix="close the case in the display first (closing it sets cases.in_use to 0)",
                )
            )
        return checks

    def run(self, ctx: StepContext) -> None:
        self.urgent_pending(ctx)
        name = self.args["case"]
        (directory,) = ctx.db.execute(
            "SELECT directory FROM cases WHERE name = ?", (name,)
        ).fetchone()
        removed = 0
        dirs: list[str] = []
        for rel in ctx.progress(_walk(ctx, directory, dirs), None, "case files removed"):
            ctx.media.remove(rel)
            removed += 1
        for rel in dirs:  # deepest first, the case directory last
            ctx.media.rmdir_empty(rel)
        ctx.db.execute("DELETE FROM cases WHERE name = ?", (name,))
        ctx.changed("cases", "deleted")
        ctx.output(case=name, directory=directory, files_removed=removed)
        ctx.note(f"case {name!r} deleted: {removed:,} file(s) removed from {directory}")


def _walk(ctx: StepContext, directory: str, dirs: list[str]) -> Iterator[str]:
    """Every file under a directory (depth first, sorted), through the media overlay;
    `directory` and the directories under it go to `dirs`, each after those inside it.
    A symbolic link (to common data) is a file here: the link goes, never what it
    points to."""
    for name in ctx.media.listdir(directory):
        rel = f"{directory}/{name}"
        if ctx.media.is_dir(rel) and not ctx.media.path(rel).is_symlink():
            yield from _walk(ctx, rel, dirs)
        else:
            yield rel
    dirs.append(directory)
