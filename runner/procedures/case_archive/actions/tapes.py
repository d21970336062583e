"""The tape actions: write the cache to the current tape, load a tape, accept a
new current tape, re-initialise an old one."""

from __future__ import annotations

import json
import re
from typing import Any

from runner.contract import Check, Output, StepContext, declare_outputs
from runner.errors import StepFailed
from runner.procedures.case_archive import catalog, media
from runner.procedures.case_archive.actions.base import CaseAction, check, urgent_banner
from runner.procedures.case_archive.catalog import Settings

WRITE_REPORT = "reports/cases-tape-write.txt"
WARN_PERCENT, URGENT_PERCENT = 80, 90


def tape_path(settings: Settings, label: str) -> str:
    return f"{settings.text('tape_dir')}/{label}.tape"


def tape_checks(ctx: StepContext, label: str, *, used: int | None = None) -> list[Check]:
    """The tape file exists, carries its label and is not shorter than the catalog says."""
    rel = tape_path(Settings(ctx.db), label)
    if not ctx.media.exists(rel):
        return [
            check(
                f"tape {label} is readable",
                False,
                f"{rel} is missing",
                fix="put the tape back in the library (restore its file)",
            )
        ]
    try:
        with ctx.media.open(rel) as handle:
            found, _capacity, _size = media.read_header(handle, rel)
            handle.seek(0, 2)
            size = handle.tell()
    except media.TapeError as exc:
        return [Check(f"tape {label} is readable", False, exc.message, exc.fix)]
    checks = [
        check(
            f"tape {label} carries its label",
            found == label,
            f"{rel} is labelled {found!r}",
            fix="the tape file holds another tape; put the right one back",
        )
    ]
    if used is not None:
        checks.append(
            check(
                f"tape {label} holds what the catalog says",
                size >= used,
                f"{rel} has {size:,} bytes; the catalog says {used:,} are written (truncated tape)",
                fix="the tape is damaged: retire it (cases.new_tape) and restore what you can",
            )
        )
    return checks


class WriteTape(CaseAction):
    name = "cases.write_tape"
    summary = (
        "write everything in the cache to the current tape as one backup session, "
        "then empty the cache"
    )
    outputs = declare_outputs(
        tape=Output("string", "label of the tape written"),
        backup=Output("integer", "backup session number"),
        files=Output("integer", "files written"),
        bytes=Output("integer", "bytes written"),
        tape_used=Output("integer", "bytes used on the tape"),
        tape_capacity=Output("integer", "tape capacity in bytes"),
        tape_percent=Output("number", "how full the tape is, in percent"),
        level=Output("string", "ok, warning or urgent"),
        urgent=Output("string or null", "the urgent banner, if the tape is nearly full"),
        report=Output("string", "the report written"),
    )
    tape_access = True

    def own_checks(self, ctx: StepContext) -> list[Check]:
        checks: list[Check] = []
        checks.append(self.lock_check(ctx))
        current = catalog.current_tape(ctx.db)
        loaded = Settings(ctx.db).text("loaded_tape")
        checks.append(
            check(
                "there is a current store tape",
                current is not None,
                "no tape is the current store tape",
                fix="initialise one with cases.new_tape",
            )
        )
        if current is None:
            return checks
        label, _capacity, used, protected = current
        checks.append(
            check(
                "the current tape is loaded",
                loaded == label,
                f"tape {loaded or '(none)'} is in the drive",
                fix=f"put the current tape back: cases.load_tape with label {label}",
            )
        )
        checks.append(
            check(
                "the current tape is writable",
                not protected,
                f"{label} is write-protected",
                fix="accept a new current tape with cases.new_tape",
            )
        )
        checks += tape_checks(ctx, label, used=used)
        return checks

    def run(self, ctx: StepContext) -> None:
        settings = Settings(ctx.db)
        current = catalog.current_tape(ctx.db)
        assert current is not None
        label, capacity, used, _ = current
        state: dict[str, Any] = dict(ctx.state)
        self.urgent_pending(ctx)
        if state.get("phase") != "clean":
            files, data, size = ctx.db.execute(
                """SELECT count(*), coalesce(sum(size), 0),
                          coalesce(sum(size + length(CAST(relpath AS BLOB))), 0)
                   FROM files WHERE location = 'cache'"""
            ).fetchone()
            if not files:
                self._finish(ctx, settings, label, capacity, used, 0, 0, None)
                ctx.note("the cache is empty: nothing to write")
                return
            after = used + 2 * media.MARK_SIZE + files * media.RECORD_OVERHEAD + size
            self._gate(label, after, capacity)
            self.take_lock(ctx, "cases.write_tape")
            try:
                backup = self._write(ctx, settings, label, used, files, data, after)
            except BaseException:
                self.release_lock(ctx)
                raise
            state = {"phase": "clean", "backup": backup, "files": files, "bytes": data}
            ctx.checkpoint(state)  # the tape holds them: now the cache may be emptied
        self._empty_cache(ctx, settings, int(state["backup"]), int(state["files"]))
        self.release_lock(ctx)
        tapes = ctx.db.execute("SELECT used FROM tapes WHERE label = ?", (label,)).fetchone()
        self._finish(
            ctx,
            settings,
            label,
            capacity,
            int(tapes[0]),
            state["files"],
            state["bytes"],
            state["backup"],
        )

    def _gate(self, label: str, after: int, capacity: int) -> None:
        """Refuse what does not fit. Nearly full is no gate: the scheduled write
        goes on and the URGENT banner follows it (`_finish`)."""
        if after > capacity:
            raise StepFailed(
                f"the cache does not fit on tape {label}: it would need {after:,} of "
                f"{capacity:,} bytes; nothing was written",
                fix="accept a new current tape (cases.new_tape), then write again",
            )

    def _write(
        self,
        ctx: StepContext,
        settings: Settings,
        label: str,
        used: int,
        files: int,
        data: int,
        after: int,
    ) -> int:
        """Append one backup session; returns its id. The tape file is rewritten
        atomically from its committed bytes, so a torn earlier attempt is dropped."""
        backup = int(ctx.db.execute("SELECT coalesce(max(id), 0) + 1 FROM backups").fetchone()[0])
        cache = settings.text("cache_dir")
        rel = tape_path(settings, label)
        # each step has its own connection: its temp tables start empty and go with it
        ctx.db.execute(
            "CREATE TEMP TABLE cases_offsets (file_id INTEGER PRIMARY KEY, "
            "tape_offset INTEGER NOT NULL)"
        )
        rows = ctx.db.execute(
            "SELECT id, relpath, size, digest FROM files WHERE location = 'cache' ORDER BY relpath"
        )
        with ctx.media.open(rel) as old, ctx.media.writer(rel) as out:
            _copy_prefix(ctx, old, out, used)
            writer = media.SessionWriter(out, used, backup, files)
            for file_id, relpath, size, digest in ctx.progress(rows, files, "files to tape"):
                where = f"{cache}/{relpath}"
                with ctx.media.open(where) as source:
                    offset = writer.add(relpath, size, digest, source, where)
                ctx.db.execute("INSERT INTO temp.cases_offsets VALUES (?, ?)", (file_id, offset))
            writer.finish()
            if writer.position != after:
                raise StepFailed(f"tape {label}: wrote {writer.position:,}, expected {after:,}")
        ctx.db.execute(
            "INSERT INTO backups (id, tape, written, offset, files, bytes) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (backup, label, catalog.stamp(ctx.now), used, files, data),
        )
        ctx.db.execute(
            """UPDATE files SET location = 'tape', backup_id = ?,
                   tape_offset = (SELECT o.tape_offset FROM temp.cases_offsets o
                                  WHERE o.file_id = files.id)
               WHERE id IN (SELECT file_id FROM temp.cases_offsets)""",
            (backup,),
        )
        ctx.db.execute("UPDATE tapes SET used = ? WHERE label = ?", (after, label))
        ctx.db.execute("DROP TABLE temp.cases_offsets")
        ctx.changed("backups", "written")
        ctx.changed("files", "cache -> tape", files)
        ctx.changed("tapes", "used")
        return backup

    def _empty_cache(self, ctx: StepContext, settings: Settings, backup: int, files: int) -> None:
        cache = settings.text("cache_dir")
        rows = ctx.db.execute(
            "SELECT relpath FROM files WHERE backup_id = ? ORDER BY relpath", (backup,)
        )
        parents: set[str] = set()
        for (relpath,) in ctx.progress(rows, files, "cache files removed"):
            ctx.media.remove(f"{cache}/{relpath}")
            parts = relpath.split("/")[:-1]
            parents.update("/".join(parts[: n + 1]) for n in range(len(parts)))
        # the directories this left empty go too, deepest first (the cache itself stays)
        for rel in sorted(parents, key=lambda p: (-p.count("/"), p)):
            ctx.media.rmdir_empty(f"{cache}/{rel}")

    def _finish(
        self,
        ctx: StepContext,
        settings: Settings,
        label: str,
        capacity: int,
        used: int,
        files: int,
        data: int,
        backup: int | None,
    ) -> None:
        percent = round(100 * used / capacity, 1)
        level = (
            "urgent"
            if percent >= URGENT_PERCENT
            else "warning"
            if percent >= WARN_PERCENT
            else "ok"
        )
        banner = urgent_banner(label, percent) if level == "urgent" else None
        summary = {
            "tape": label,
            "backup": backup,
            "files": files,
            "bytes": data,
            "tape_used": used,
            "tape_capacity": capacity,
            "tape_percent": percent,
            "level": level,
            "urgent": banner,
        }
        report = ctx.report(
            "case_archive/tape_write.txt.j2",
            self.args.get("report", WRITE_REPORT),
            {"now": ctx.now.isoformat(), "s": summary},
        )
        ctx.output(**summary, report=report)
        if files:
            ctx.note(
                f"backup session {backup}: {files:,} file(s), {data:,} bytes written to tape "
                f"{label}; the cache is empty. Tape {percent:.1f}% used"
            )
        if banner is not None:
            ctx.warn(banner)
            # kept until acknowledged: later cases steps show it again
            catalog.set_setting(
                ctx.db, "tape_urgent", json.dumps({"text": banner, "run": ctx.run_id})
            )
            ctx.changed("settings", "tape_urgent raised")
        elif level == "warning":
            ctx.warn(f"tape {label} is {percent:.1f}% full")


def _copy_prefix(ctx: StepContext, source: Any, out: Any, length: int) -> None:
    """The first `length` bytes of the old tape: what the catalog says is written."""
    left = length
    while left:
        chunk = source.read(min(media.CHUNK, left))
        if not chunk:
            raise media.TapeError("the tape ended before its committed data (truncated)")
        out.write(chunk)
        left -= len(chunk)
        ctx.advance("tape bytes kept", length - left, length)


class LoadTape(CaseAction):
    name = "cases.load_tape"
    summary = "load a tape in the drive (an old one to restore from, or the current one back)"
    outputs = declare_outputs(
        loaded=Output("string", "label of the tape loaded"),
        unloaded=Output("string or null", "label of the tape taken out, if any"),
    )
    tape_access = True

    def own_checks(self, ctx: StepContext) -> list[Check]:
        checks: list[Check] = []
        label = self.args["label"]
        row = ctx.db.execute("SELECT used FROM tapes WHERE label = ?", (label,)).fetchone()
        checks.append(
            check(
                "the tape is in the catalog",
                row is not None,
                f"no tape {label!r}",
                fix="name a tape from the tapes table",
            )
        )
        if row is not None:
            checks += tape_checks(ctx, label, used=int(row[0]))
        return checks

    def run(self, ctx: StepContext) -> None:
        self.urgent_pending(ctx)
        label = self.args["label"]
        settings = Settings(ctx.db)
        before = settings.text("loaded_tape")
        catalog.set_setting(ctx.db, "loaded_tape", label)
        ctx.changed("settings", "loaded_tape")
        current = catalog.current_tape(ctx.db)
        ctx.output(loaded=label, unloaded=before)
        ctx.note(f"tape {label} loaded (was: {before or 'empty drive'})")
        if current is not None and current[0] != label:
            ctx.warn(
                f"tape {label} is not the current store tape: put {current[0]} back "
                "afterwards (cases.load_tape), or tape writes refuse"
            )


class NewTape(CaseAction):
    name = "cases.new_tape"
    summary = (
        "accept a newly initialised tape as the current store tape; the old one "
        "becomes write-protected"
    )
    outputs = declare_outputs(
        label=Output("string", "the new current store tape"),
        previous=Output("string or null", "the previous current tape, if any"),
        capacity=Output("integer", "the new tape's capacity in bytes"),
    )
    tape_access = True

    def _label(self, ctx: StepContext) -> tuple[str, int]:
        pool = Settings(ctx.db).text("tape_pool")
        label = self.args.get("label")
        if label is None:
            number = int(
                ctx.db.execute(
                    "SELECT coalesce(max(number), 0) + 1 FROM tapes WHERE pool = ?", (pool,)
                ).fetchone()[0]
            )
            return f"{pool}_{number}_2", number
        match = re.fullmatch(re.escape(pool) + r"_([0-9]+)_2", label)
        return label, int(match.group(1)) if match else -1

    def own_checks(self, ctx: StepContext) -> list[Check]:
        checks: list[Check] = []
        label, number = self._label(ctx)
        pool = Settings(ctx.db).text("tape_pool")
        checks.append(
            check(
                "the label follows the pattern <pool>_<n>_2",
                number > 0,
                f"{label!r} is not {pool}_<n>_2",
                fix=f"label store tapes {pool}_<n>_2, or leave label out",
            )
        )
        row = ctx.db.execute("SELECT state FROM tapes WHERE label = ?", (label,)).fetchone()
        (free,) = ctx.db.execute(
            "SELECT coalesce(max(number), 0) + 1 FROM tapes WHERE pool = ?", (pool,)
        ).fetchone()
        checks.append(
            check(
                "the tape is new or re-initialised",
                row is None or row[0] == "blank",
                f"tape {label} is a {row[0] if row else ''} tape with data on it",
                fix="re-initialise an old tape first (cases.reinit_tape), or use a new label "
                f"({pool}_{free}_2 is free)",
            )
        )
        return checks

    def run(self, ctx: StepContext) -> None:
        settings = Settings(ctx.db)
        label, number = self._label(ctx)
        current = catalog.current_tape(ctx.db)
        capacity = int(self.args.get("capacity") or (current[1] if current else 10_000_000))
        header = media.header_bytes(label, capacity)
        ctx.media.write_bytes(tape_path(settings, label), header)
        if current is not None:
            ctx.db.execute(
                "UPDATE tapes SET state = 'old', write_protected = 1 WHERE label = ?",
                (current[0],),
            )
            ctx.changed("tapes", "current -> old (write-protected)")
        ctx.db.execute(
            """INSERT INTO tapes (label, pool, number, capacity, used, state, write_protected)
               VALUES (?, ?, ?, ?, ?, 'current', 0)
               ON CONFLICT(label) DO UPDATE SET state = 'current', write_protected = 0,
                   capacity = excluded.capacity, used = excluded.used""",
            (label, settings.text("tape_pool"), number, capacity, len(header)),
        )
        ctx.changed("tapes", "new current")
        if Settings(ctx.db).text("tape_urgent"):
            # the nearly full tape is replaced: what the URGENT banner asked is done
            catalog.set_setting(ctx.db, "tape_urgent", "")
            ctx.changed("settings", "tape_urgent resolved")
            ctx.note("the URGENT nearly-full banner is resolved: the tape was replaced")
        catalog.set_setting(ctx.db, "loaded_tape", label)
        cached = catalog.cache_used(ctx.db)
        ctx.output(label=label, previous=current[0] if current else None, capacity=capacity)
        ctx.note(
            f"tape {label} is the current store tape"
            + (
                f"; {current[0]} is now an old tape, write-protected, restore-only"
                if current
                else ""
            )
        )
        if cached:
            ctx.note(f"the cache ({cached:,} bytes) will go to {label} at the next tape write")


class ReinitTape(CaseAction):
    name = "cases.reinit_tape"
    summary = "re-initialise an old tape: its store sessions leave the restore catalog (data loss)"
    destructive = True
    outputs = declare_outputs(
        label=Output("string", "the tape re-initialised"),
        files_removed=Output("integer", "stored files removed from the restore catalog"),
        sessions_removed=Output("integer", "store sessions removed"),
    )
    loss_units = ("files",)
    tape_access = True

    def own_checks(self, ctx: StepContext) -> list[Check]:
        checks: list[Check] = []
        label = self.args["label"]
        row = ctx.db.execute("SELECT state FROM tapes WHERE label = ?", (label,)).fetchone()
        checks.append(
            check(
                "the tape is an old tape",
                row is not None and row[0] == "old",
                f"tape {label!r} is " + (f"the {row[0]} tape" if row else "not in the catalog"),
                fix="only old (retired) tapes can be re-initialised; to re-initialise the "
                "current tape, retire it first: cases.new_tape makes a new current tape "
                "and this one old, then load it (cases.load_tape) and run this again",
            )
        )
        loaded = Settings(ctx.db).text("loaded_tape")
        checks.append(
            check(
                "the tape is loaded",
                loaded == label,
                f"tape {loaded or '(none)'} is in the drive",
                fix=f"load it first: cases.load_tape with label {label}",
            )
        )
        return checks

    def run(self, ctx: StepContext) -> None:
        self.urgent_pending(ctx)
        label = self.args["label"]
        settings = Settings(ctx.db)
        ctx.db.execute("CREATE TEMP TABLE cases_gone AS SELECT id FROM files WHERE 0")
        ctx.db.execute(
            """INSERT INTO temp.cases_gone SELECT f.id FROM files f
               JOIN backups b ON b.id = f.backup_id WHERE b.tape = ?""",
            (label,),
        )
        files = int(ctx.db.execute("SELECT count(*) FROM temp.cases_gone").fetchone()[0])
        sessions = [
            r[0]
            for r in ctx.db.execute(
                """SELECT s.name FROM store_sessions s WHERE EXISTS
                     (SELECT 1 FROM session_files sf JOIN temp.cases_gone g ON g.id = sf.file_id
                      WHERE sf.session_id = s.id)
                   AND NOT EXISTS
                     (SELECT 1 FROM session_files sf WHERE sf.session_id = s.id
                      AND sf.file_id NOT IN temp.cases_gone)
                   ORDER BY s.name"""
            )
        ]
        if ctx.state.get("phase") != "gated":
            examples = (
                r[0]
                for r in ctx.db.execute(
                    "SELECT relpath FROM files WHERE id IN temp.cases_gone "
                    "ORDER BY relpath LIMIT 50"
                )
            )
            ctx.lost("files", files, examples)
            ctx.checkpoint({"phase": "gated"})  # the loss budget, before anything changes
        partial = ctx.db.execute(
            """SELECT count(DISTINCT sf.session_id) FROM session_files sf
               JOIN temp.cases_gone g ON g.id = sf.file_id"""
        ).fetchone()[0] - len(sessions)
        ctx.db.execute("DELETE FROM session_files WHERE file_id IN temp.cases_gone")
        ctx.db.execute("DELETE FROM files WHERE id IN temp.cases_gone")
        ctx.db.execute("DELETE FROM backups WHERE tape = ?", (label,))
        ctx.db.execute(
            "DELETE FROM store_sessions WHERE name IN (SELECT value FROM json_each(?))",
            (json.dumps(sessions),),
        )
        ctx.db.execute("DROP TABLE temp.cases_gone")
        row = ctx.db.execute("SELECT capacity FROM tapes WHERE label = ?", (label,)).fetchone()
        header = media.header_bytes(label, int(row[0]))
        ctx.media.write_bytes(tape_path(settings, label), header)
        ctx.db.execute(
            "UPDATE tapes SET state = 'blank', write_protected = 0, used = ? WHERE label = ?",
            (len(header), label),
        )
        ctx.changed("files", "removed (data gone)", files)
        ctx.changed("store_sessions", "removed", len(sessions))
        ctx.changed("tapes", "old -> blank")
        ctx.output(label=label, files_removed=files, sessions_removed=sessions)
        ctx.note(
            f"tape {label} re-initialised: {files:,} file(s) and {len(sessions)} store "
            f"session(s) removed from the restore catalog: {', '.join(sessions) or 'none'}"
        )
        if partial:
            ctx.warn(
                f"{partial} other session(s) had files on {label}; they keep their other files"
            )
