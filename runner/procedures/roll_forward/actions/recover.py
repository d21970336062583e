"""rollforward.recover: the gates before a roll forward, the replay, and its outcome."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from runner.contract import Check, Output, StepContext, declare_outputs
from runner.errors import MediaError, RecoverError, SafetyRefusal, StepFailed
from runner.procedures.roll_forward import reporting
from runner.procedures.roll_forward.actions.base import (
    DatabaseInUse,
    RollForwardAction,
    database_exists,
    open_for_access,
    read_all_flags,
)
from runner.procedures.roll_forward.catalog import (
    Flags,
    OnlineBackup,
    alias_for,
    backup_alias,
    backup_rel,
    database_rel,
    ensure_recovery_table,
    read_flags,
    read_online_backup,
    valid_name,
    write_flags,
)
from runner.procedures.roll_forward.logset import LogSet, scan_log_set
from runner.procedures.roll_forward.media import iso_stamp, iso_us, to_us
from runner.procedures.roll_forward.reader import Options, ReplayState
from runner.procedures.roll_forward.replay import Replay
from runner.site import Site


class StampMismatch(SafetyRefusal):
    """Backup and log do not belong together: recovering would silently give wrong data."""


class NotRecoverable(SafetyRefusal):
    """The database was changed since its backup (or already rolled forward)."""


class RecoveryAborted(StepFailed):
    """Too many errors (error_limit) or an inconsistent log: the run stops."""


class LogFileMissing(StepFailed):
    """The log continues in a file that is not there; supply it and run again."""


def parse_stop(value: Any) -> int | None:
    if value in (None, ""):
        return None
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("it has no time zone")
    return to_us(moment)


class Recover(RollForwardAction):
    name = "rollforward.recover"
    summary = "roll databases forward: re-apply completed transactions from a log set"
    destructive = True
    outputs = declare_outputs(
        applied=Output("integer", "transactions re-applied"),
        calls_applied=Output("integer", "calls re-applied"),
        suppressed=Output("integer", "transactions suppressed"),
        suppressed_by_reason=Output("object", "suppressed transactions by reason"),
        rolled_back=Output("integer", "transactions rolled back"),
        transactions_lost=Output("integer", "transactions lost (failed or dependent)"),
        records_read=Output("integer", "log records read"),
        files_read=Output("list", "log files read"),
        first_time=Output("string or null", "time of the first record read"),
        last_time=Output("string or null", "time of the last record read"),
        stop_at=Output("string or null", "the stop time given"),
        ended_by=Output("string", "why the roll-forward stopped"),
        warnings=Output("list", "warnings"),
        per_database=Output("object", "counts per database"),
        overrides=Output("list", "overrides applied"),
    )
    loss_units = ("transactions",)

    def __init__(self, args: dict[str, Any]) -> None:
        super().__init__(args)
        self._logset: LogSet | None = None

    def databases(self, site: Site) -> dict[str, str]:
        """The databases, and the backups they are restored from: where the roll
        forward starts in the log (an online copy's point) is known from the
        backups before the restore step has run (see preflight)."""
        out = super().databases(site)
        for name in self.names():
            if valid_name(name) and site.path(backup_rel(name)).exists():
                out[backup_alias(name)] = backup_rel(name)
        return out

    def preflight(self, ctx: StepContext) -> Iterator[Check]:
        """stop_at parses and the log set is intact from the file the roll forward
        starts in (the backups' online point, else file 1), before a run's
        first step: a log that cannot be replayed refuses the run whole."""
        yield from super().preflight(ctx)
        yield self._stop_at_check()
        set_name = str(self.args.get("log_set", ""))
        if not set_name:
            return
        points: set[OnlineBackup | None] = set()
        for name in self.names():
            if not valid_name(name) or not ctx.media.exists(backup_rel(name)):
                points.add(None)
                continue
            try:
                flags = read_flags(ctx.db, backup_alias(name), backup_rel(name))
                points.add(read_online_backup(ctx.db, backup_alias(name), flags))
            except (MediaError, sqlite3.Error):
                points.add(None)  # the restore step's checks name the backup
        point = next(iter(points)) if len(points) == 1 else None
        try:
            scan_log_set(ctx.media, set_name, point.log_file if point is not None else 1)
        except MediaError as exc:
            yield Check(f"log set {set_name} is intact", False, exc.message, fix=exc.fix)

    def _stop_at_check(self) -> Check:
        try:
            parse_stop(self.args.get("stop_at"))
            return Check("stop_at is a date-time with a time zone", True)
        except ValueError as exc:
            return Check(
                "stop_at is a date-time with a time zone",
                False,
                f"stop_at {self.args.get('stop_at')!r}: {exc}",
                fix="write it like 2026-01-02T03:04:05+00:00",
            )

    def own_checks(self, ctx: StepContext) -> Iterator[Check]:
        """Each database exists, stop_at parses, the log set is intact (scanned
        once here; run uses the scan)."""
        for name in self.names():
            yield database_exists(ctx, name)
        try:
            parse_stop(self.args.get("stop_at"))
            yield Check("stop_at is a date-time with a time zone", True)
        except ValueError as exc:
            yield Check(
                "stop_at is a date-time with a time zone",
                False,
                f"stop_at {self.args.get('stop_at')!r}: {exc}",
                fix="write it like 2026-01-02T03:04:05+00:00",
            )
        set_name = str(self.args["log_set"])
        try:
            self._logset = scan_log_set(ctx.media, set_name, self._first_file(ctx))
        except MediaError as exc:
            yield Check(f"log set {set_name} is intact", False, exc.message, fix=exc.fix)
            return
        logset = self._logset
        files = [logset.rel(n) for n in sorted(logset.headers)]
        detail = f"{len(files)} file(s): {', '.join(files)}; logging id {logset.logging_id}"
        if logset.missing():
            detail += "; missing: " + ", ".join(logset.rel(n) for n in logset.missing())
        yield Check(f"log set {set_name} is intact", True, detail)

    # -- run ---------------------------------------------------------------
    def run(self, ctx: StepContext) -> None:
        logset = self._logset or scan_log_set(
            ctx.media, str(self.args["log_set"]), self._first_file(ctx)
        )
        options = Options(
            stop_us=parse_stop(self.args.get("stop_at")),
            checkpoint_records=int(self.args.get("checkpoint_records", 1_000_000)),
            flush_calls=int(self.args.get("batch_calls", 20_000)),
            chunk_records=int(self.args.get("chunk_records", 4096)),
        )
        reader = str(self.args.get("reader", "auto"))
        first_gap = next(iter(logset.missing()), None)
        readable = [n for n in sorted(logset.headers) if first_gap is None or n < first_gap]
        ctx.note(
            f"will read log set {logset.name}: "
            + ", ".join(logset.rel(n) for n in readable)
            + (f"; then it needs {logset.rel(first_gap)}, which is missing" if first_gap else "")
        )
        if ctx.state:
            state = ReplayState.from_dict(dict(ctx.state))
            ctx.note(f"resuming at record {state.pos[2]} of {logset.rel(int(state.pos[0]))}")
            _gate_access(read_all_flags(ctx, state.targets))
            for alias in state.targets.values():
                ensure_recovery_table(ctx.db, alias)
        else:
            state = self._start(ctx, logset)
        self._warn_no_crash_record(ctx, logset, state)
        replay = Replay(ctx, logset, state, options, reader)
        try:
            stop = replay.run()
        except MediaError as exc:
            # The engine rolls back to the last checkpoint: report what that holds.
            committed = ReplayState.from_dict(dict(ctx.state)) if ctx.state else state
            committed.last_txn_record = state.last_txn_record
            self._abort(ctx, logset, committed, exc.message, with_summary=False)
            raise RecoveryAborted(exc.message, fix=exc.fix) from exc
        if stop.kind == "missing_file":
            message = f"roll forward stopped: {stop.detail}"
            self._abort(ctx, logset, state, message, with_summary=True)
            raise LogFileMissing(
                message + f"; transactions up to record {state.pos[2] - 1} are applied; "
                f"supply {stop.needed_file} and run again to continue from there",
                fix=f"supply {stop.needed_file} and run again: it continues from there",
            )
        self._finish(ctx, logset, state, stop.kind)

    def _online_points(self, ctx: StepContext) -> dict[str, OnlineBackup | None]:
        """Each readable named database's online backup point (None: an offline copy)."""
        points: dict[str, OnlineBackup | None] = {}
        for name in self.names():
            if not valid_name(name) or not ctx.media.exists(database_rel(name)):
                continue  # the existence check says why
            try:
                flags = read_flags(ctx.db, alias_for(name), database_rel(name))
                points[name] = read_online_backup(ctx.db, alias_for(name), flags)
            except (MediaError, sqlite3.Error):
                continue
        return points

    def _first_file(self, ctx: StepContext) -> int:
        """The first log file needed: the online backup's file when every named
        database comes from that copy, else file 1 (the cycle start)."""
        points = set(self._online_points(ctx).values())
        point = next(iter(points)) if len(points) == 1 else None
        return point.log_file if point is not None else 1

    def _warn_no_crash_record(self, ctx: StepContext, logset: LogSet, st: ReplayState) -> None:
        """The procedure's rule: a log that ends without the restart's crash record (no
        restart recovery was done after the failure) is rolled forward, with a warning
        (kept in the state, so the summary has it on a resumed run too)."""
        if logset.crash is not None:
            return
        message = (
            f"{logset.rel(logset.last_file)} (the newest file of log set {logset.name}) does "
            "not end with a crash record: no restart recovery was done after the failure; "
            "rolling forward anyway, up to the end of what was written (check that no later "
            "log file exists elsewhere)"
        )
        if message not in st.warnings:
            st.warnings.append(message)
        ctx.warn(message)

    def _start(self, ctx: StepContext, logset: LogSet) -> ReplayState:
        """The gates of a fresh roll forward; returns the initial state."""
        stop_us = parse_stop(self.args.get("stop_at"))
        points = self._online_points(ctx)
        if any(points.values()):
            return self._start_online(ctx, logset, points, stop_us)
        assert logset.cycle is not None  # file 1 was scanned: no online backup
        if stop_us is not None and stop_us < logset.cycle.started_us:
            raise StepFailed(
                f"stop_at {self.args['stop_at']} is before the start of logging cycle "
                f"{logset.logging_id} ({iso_us(logset.cycle.started_us)}): the backup copies "
                "are already later than that point in time",
                fix=f"give a stop time at or after {iso_us(logset.cycle.started_us)} (the "
                "cycle start), or restore an older backup with its log",
            )
        return self._open_targets(ctx, logset, ReplayState(targets={}, pos=[1, 0, 1]), None)

    def _start_online(
        self,
        ctx: StepContext,
        logset: LogSet,
        points: dict[str, OnlineBackup | None],
        stop_us: int | None,
    ) -> ReplayState:
        """A fresh start from online backup copies: replay starts after their quiesce
        point, in the log file that was in use; the files before it are not needed."""
        distinct = set(points.values())
        if len(distinct) > 1:
            taken = "; ".join(
                f"{n}: "
                + (f"online, after record {p.log_record}" if p else "offline (cycle start)")
                for n, p in points.items()
            )
            raise StampMismatch(
                f"the databases come from backup copies taken at different points of the log "
                f"({taken}); one roll forward starts at one point; nothing was applied",
                fix="roll them forward in separate rollforward.recover steps, one per backup point",
            )
        point = next(iter(distinct))
        assert point is not None
        flags = read_all_flags(ctx, self.names())
        stamp_us = min(f.stamp_us or 0 for f in flags.values())
        if stop_us is not None and stop_us < stamp_us:
            raise StepFailed(
                f"stop_at {self.args['stop_at']} is before the online backup copies were "
                f"taken ({iso_stamp(stamp_us)}): they are already later than that point in time",
                fix=f"give a stop time at or after {iso_stamp(stamp_us)} (when the copies "
                "were taken), or restore an older backup with its log",
            )
        header = logset.headers[point.log_file]
        start = [point.log_file, 0, point.log_record + 1]
        state = ReplayState(
            targets={},
            pos=start,
            rescan=[point.log_file, 0, header.first_seq],
            starts_after=point.log_record,
        )
        ctx.note(
            f"online backup copies: the roll forward starts after record {point.log_record} "
            f"of {logset.rel(point.log_file)} (their quiesce point); earlier log files are "
            "not needed"
        )
        return self._open_targets(ctx, logset, state, point)

    def _open_targets(
        self, ctx: StepContext, logset: LogSet, state: ReplayState, point: OnlineBackup | None
    ) -> ReplayState:
        """The gates every fresh start passes; fills in the state's targets."""
        names = self.names()
        flags = read_all_flags(ctx, names)
        _gate_access(flags)
        not_recoverable = []
        for name, f in flags.items():
            if f.rolled_forward_to is not None:
                not_recoverable.append(
                    f"{name} was already rolled forward (through record {f.rolled_forward_to})"
                )
            elif f.modified:
                not_recoverable.append(f"{name} was modified after its backup copy was taken")
        if not_recoverable:
            raise NotRecoverable(
                "; ".join(not_recoverable) + "; re-applying the log would corrupt it",
                fix="restore it from its backup copy first (rollforward.restore)",
            )
        self._gate_stamps(ctx, logset, flags, point)
        errors = []
        for name, f in flags.items():
            if f.recovery != "enabled":
                errors.append(f"database {name} is not enabled for recovery")
        limit = int(self.args.get("error_limit", 0))
        for number, error in enumerate(errors, start=1):
            ctx.warn(f"error {number} (limit {limit}): {error}; it is not recovered")
        targets = {n: alias_for(n) for n in names if flags[n].recovery == "enabled"}
        state.targets = targets
        if len(errors) > limit or not targets:
            why = (
                f"{len(errors)} error(s), more than error_limit {limit}"
                if len(errors) > limit
                else "no named database is enabled for recovery"
            )
            message = f"roll forward aborted before the first record: {why}: " + "; ".join(errors)
            self._abort(ctx, logset, state, message, with_summary=False, databases=names)
            raise RecoveryAborted(
                message,
                fix="enable recovery (rollforward.set_flags recovery: enabled) or raise "
                "error_limit to recover the other databases without them",
            )
        for alias in targets.values():
            ensure_recovery_table(ctx.db, alias)
        return state

    def _gate_stamps(
        self,
        ctx: StepContext,
        logset: LogSet,
        flags: dict[str, Any],
        point: OnlineBackup | None,
    ) -> None:
        no_stamp = bool(self.args.get("no_stamp_check", False))
        no_store = bool(self.args.get("no_store_flag_check", False))
        stamp_problems: list[str] = []
        store_problems: list[str] = []
        for name, f in flags.items():
            if point is not None:
                stamp_problems += _online_problems(name, point, logset)
                if not f.backup_by_store:
                    store_problems.append(
                        f"{name}: the backup copy was not made by the store utility"
                    )
                continue
            assert logset.cycle is not None
            entry = logset.cycle.stamps.get(name)
            if entry is None:
                stamp_problems.append(f"log set {logset.name} holds no backup stamp for {name}")
                continue
            log_stamp, log_by_store = entry
            if f.stamp_us != log_stamp:
                stamp_problems.append(
                    f"{name}: backup stamp {f.backup_stamp or 'none'} does not match the "
                    f"cycle start of log set {logset.name} ({iso_stamp(log_stamp)})"
                )
            if not f.backup_by_store or not log_by_store:
                store_problems.append(f"{name}: the backup copy was not made by the store utility")
        refusals = []
        for problems, override, option in (
            (stamp_problems, no_stamp, "no_stamp_check"),
            (store_problems, no_store, "no_store_flag_check"),
        ):
            if problems and override:
                for problem in problems:
                    ctx.warn(
                        f"OVERRIDE {option}: {problem}; recovering anyway on the "
                        "administrator's responsibility"
                    )
            elif problems:
                refusals += problems
            elif override:
                ctx.warn(f"OVERRIDE {option} is set (no mismatch found; the check was skipped)")
        if refusals:
            raise StampMismatch(
                "backup copy and log do not correspond: "
                + "; ".join(refusals)
                + "; nothing was applied",
                fix="restore the backup copy taken at the start of this logging cycle, or use "
                "the log set of this backup; only if you are sure, set no_stamp_check "
                "(or no_store_flag_check)",
            )

    # -- outcome -----------------------------------------------------------
    def _finish(self, ctx: StepContext, logset: LogSet, state: ReplayState, kind: str) -> None:
        summary = reporting.collect(ctx.db, logset, state, self.args)
        for name, alias in state.targets.items():
            write_flags(
                ctx.db,
                alias,
                {
                    "must_recover": "disabled",
                    "rolled_forward_to": summary["last_record"],
                    "recovered_at": ctx.now.isoformat(timespec="seconds"),
                },
            )
            ctx.changed(f"{name} (rf_flags)", "must_recover -> disabled")
        counts = summary["counts"]
        for name, per in summary["per_db"].items():
            if per["applied"]:
                ctx.changed(name, "transactions re-applied", per["applied"])
            if per["calls"]:
                ctx.changed(name, "calls re-applied", per["calls"])
        lost = counts["failed"] + counts["dependent"]
        ctx.lost(
            "transactions",
            lost,
            (
                f"{x['database']} txn {x['txn']} ({x['user']}): {x['detail']}"
                for x in summary["lost_examples"]
            ),
        )
        ctx.note(reporting.one_line(summary))
        ctx.output(**reporting.outputs(summary))
        reporting.write_reports(ctx, summary, bool(self.args.get("user_files", True)))

    def _abort(
        self,
        ctx: StepContext,
        logset: LogSet,
        state: ReplayState,
        message: str,
        *,
        with_summary: bool,
        databases: list[str] | None = None,
    ) -> None:
        try:
            reporting.write_abort(
                ctx,
                logset,
                state,
                message,
                databases or list(state.targets),
                bool(self.args.get("user_files", True)),
                with_summary,
            )
        except RecoverError:
            raise
        except Exception as exc:
            ctx.warn(f"the abort message could not be written: {exc}")


def _gate_access(flags: dict[str, Flags]) -> None:
    busy = open_for_access(flags)
    if busy:
        raise DatabaseInUse(
            "refusing to roll forward databases open for access: " + ", ".join(busy),
            fix="disable access first (rollforward.set_flags access: disabled)",
        )


def _online_problems(name: str, point: OnlineBackup, logset: LogSet) -> list[str]:
    """Why an online backup copy and this log do not belong together, if they do not:
    another logging cycle, or a quiesce point outside the file it names."""
    if point.logging_id != logset.logging_id:
        return [
            f"{name}: the online backup copy was taken in logging cycle {point.logging_id}, "
            f"log set {logset.name} is cycle {logset.logging_id}"
        ]
    header = logset.headers[point.log_file]
    last = logset.switches.get(point.log_file)
    if point.log_record + 1 < header.first_seq or (last is not None and point.log_record >= last):
        return [
            f"{name}: the online backup copy was taken after record {point.log_record}, which "
            f"is not where {logset.rel(point.log_file)} (records from {header.first_seq}) "
            "continues"
        ]
    return []
