"""Executing a playbook's steps, for real or as a dry run, with the same code.

A Session walks the steps in order. Each step gets a fresh connection whose
main database is the journal and whose attached databases are the catalogs
the action asked for; the step's work and its journal record commit together.
In a dry run the journal is a scratch copy, the catalogs are read in place
through one connection whose transaction is always rolled back (see
runner.engine.rehearsal), and media writes go to an overlay, so the site is
never touched.
"""

from __future__ import annotations

import contextlib
import copy
import re
import shutil
import sqlite3
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from loguru import logger

from runner.contract import Action, Check, Registry
from runner.engine import crash, journal
from runner.engine.claims import ReportClaims
from runner.engine.context import Context
from runner.engine.journal import StepRecord, StepState
from runner.engine.loss import LossTally
from runner.engine.media import MediaLog, MediaStore
from runner.engine.progress import current_listener
from runner.engine.rehearsal import Rehearsal
from runner.engine.reports import make_environment
from runner.errors import (
    LossBudgetExceeded,
    MediaError,
    PlaybookError,
    PreconditionFailed,
    RecoverError,
    SafetyRefusal,
    SiteError,
    StepFailed,
)
from runner.playbook.diagnostics import Diagnostic
from runner.playbook.model import Playbook, Step
from runner.playbook.quickcheck import is_valid
from runner.playbook.template import TemplateProblem, render_value
from runner.playbook.yamlpos import mark_for_path
from runner.site import Site

_ALIAS = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


@dataclass
class Request:
    """A playbook bound to a site and concrete parameter values."""

    playbook: Playbook
    site: Site
    params: dict[str, Any]
    confirmations: set[str]
    allow_loss: dict[str, int | None]  # None = unlimited
    registry: Registry
    #: the selected step ids in playbook order (--start-at/--only/--skip); None: all
    selection: tuple[str, ...] | None = None

    def selected(self, step: Step) -> bool:
        return self.selection is None or step.id in self.selection


@dataclass
class StepOutcome:
    """A step's record plus what only a plan shows (checks, refusal reason)."""

    step: Step
    record: StepRecord
    destructive: bool
    summary: str
    checks: list[Check] = field(default_factory=list)
    already: bool = False  # done in an earlier (interrupted) run
    #: what an interrupted attempt of this step had committed before this one went on
    #: (its counts are included in `record`'s, which are the step's totals)
    before: StepRecord | None = None
    #: how to fix what ended the step (a plan shows it under the step's error)
    fix: str | None = None


class Session:
    def __init__(
        self,
        request: Request,
        *,
        dry_run: bool,
        journal_path: Path,
        run_id: str,
        clock: datetime,
        records: dict[str, StepRecord],
        scratch: Path | None = None,
        inputs: dict[str, StepRecord] | None = None,
        in_place: bool = True,
    ) -> None:
        self.request = request
        self.dry_run = dry_run
        self.journal_path = journal_path
        self.run_id = run_id
        self.clock = clock
        self.records = records
        #: finished records of unselected steps that selected steps read (other runs')
        self.inputs = inputs or {}
        self.scratch = scratch
        self.media = MediaStore(request.site, dry_run=dry_run)
        self.reports = make_environment(
            request.site.root / "templates", request.registry.template_folders()
        )
        self._copies: dict[str, tuple[Path, Path]] = {}
        #: steps whose inputs already fail (runner.engine.preflight): a plan shows
        #: them failed without running them on inputs known to be bad
        self.blocked: dict[str, list[Check]] = {}
        # A dry run reads the live catalogs in place unless told to copy them.
        self.rehearsal: Rehearsal | None = None
        if dry_run and in_place:
            assert scratch is not None
            self.rehearsal = Rehearsal(journal_path, scratch)
        self._committed = StepRecord("", 0, "")  # the current step as last committed

    # -- the loop ------------------------------------------------------------
    def execute(
        self, *, keep_going: bool, on_step: Callable[[StepOutcome], None] | None = None
    ) -> list[StepOutcome]:
        """Run every pending step. keep_going (plans) records failures and goes on."""
        outcomes: list[StepOutcome] = []
        registry = self.request.registry
        try:
            for step in self.request.playbook.steps:
                if not self.request.selected(step):
                    continue
                cls = registry.action(step.action)
                record = self.records.get(step.id) or StepRecord(step.id, step.index, step.action)
                self.records[step.id] = record
                outcome = StepOutcome(
                    step, record, cls.destructive, cls.summary, already=record.state.finished
                )
                if not outcome.already and (record.changes or record.loss):
                    outcome.before = copy.deepcopy(record)
                outcomes.append(outcome)
                if not outcome.already:
                    try:
                        self._step(step, cls, outcome)
                    except RecoverError as exc:
                        record.state = (
                            StepState.REFUSED
                            if isinstance(exc, SafetyRefusal)
                            else StepState.FAILED
                        )
                        record.error = exc.message
                        outcome.fix = exc.fix
                        if not keep_going:
                            if on_step is not None:
                                on_step(outcome)  # its block shows its notes and checks
                            raise
                if on_step is not None:
                    on_step(outcome)
        finally:
            if self.rehearsal is not None:
                self.rehearsal.close()
            self.media.close()
        return outcomes

    def _step(self, step: Step, cls: type[Action], outcome: StepOutcome) -> None:
        record = outcome.record
        blocked = self.blocked.get(step.id)
        if blocked:
            outcome.checks = list(blocked)
            refused = all(c.refusal for c in blocked)
            raise (SafetyRefusal if refused else PreconditionFailed)(
                f"step {step.id!r} would fail before any step ran: "
                + "; ".join(f"{c.name}: {c.detail}" if c.detail else c.name for c in blocked),
                fix=next((c.fix for c in blocked if c.fix), None),
            )
        try:
            variables = self._variables()
            if step.when is not None and not self._render(step, ("when",), step.when, variables):
                record.state = StepState.SKIPPED
                record.notes.append({"level": "info", "text": "skipped: `when` is false"})
                self._persist_alone(record)
                return
            args = self._render(step, ("args",), step.args, variables)
            self._validate_args(step, args)
            action = cls(args)
            conn = self._connect(action)
        except RecoverError as exc:
            # Failed before its transaction began: still say so in the journal.
            if not self.dry_run:
                record.state, record.error = _ended_by(exc)
                with contextlib.suppress(RecoverError):  # if the journal is what failed
                    self._persist_alone(record)
            raise
        self.media.log = MediaLog.from_json(record.media_log)  # what earlier attempts did
        claims = ReportClaims(
            None
            if self.dry_run
            else self.request.site.state_dir / "claims" / f"{self.run_id}.{step.index}.json"
        )
        started = time.monotonic()
        self._committed = copy.deepcopy(record)
        listener = current_listener()
        try:
            if not self.dry_run:
                record.state, record.attempts = StepState.RUNNING, record.attempts + 1
                record.started_at = record.started_at or _iso(self.clock)
                journal.write_step(conn, self.run_id, record)
            ctx = Context(
                site=self.request.site,
                db=conn,
                media=self.media,
                dry_run=self.dry_run,
                now=self.clock,
                run_id=self.run_id,
                record=record,
                confirmations=self.request.confirmations,
                reports=self.reports,
                on_checkpoint=self._checkpoint,
                claims=claims,
                listener=listener,
            )
            self._begin(conn)
            outcome.checks = list(action.check(ctx))
            failed = [c for c in outcome.checks if not c.ok]
            if failed:
                self._rollback(conn)
                raise PreconditionFailed(
                    f"step {step.id!r}: "
                    + "; ".join(f"{c.name}: {c.detail}" if c.detail else c.name for c in failed),
                    fix=next((c.fix for c in failed if c.fix), None),
                )
            logger.bind(console="plain").info(
                "step {} ({}) {}", step.id, step.action, "planning" if self.dry_run else "running"
            )
            if listener is not None:
                listener.step_started(step.id, step.action, dry_run=self.dry_run)
            action.run(ctx)
            self._gate_loss(record)
            record.state = StepState.DONE
            record.error = None  # an earlier attempt's failure is over: it is done now
            record.finished_at = _iso(self.clock)
            record.seconds += time.monotonic() - started
            record.media = self.media.log.lines()
            record.media_log = self.media.log.to_json()
            journal.write_step(conn, self.run_id, record)
            self._commit(conn, step.id)
            claims.release()
            logger.debug("step {} done in {:.2f}s", step.id, record.seconds)
        except BaseException as exc:
            self._rollback(conn)
            written = list(record.reports)
            if not (self.dry_run and isinstance(exc, SafetyRefusal)):
                self._restore(conn, record)  # a plan keeps what the refused step would do
            if isinstance(exc, SafetyRefusal) and not self.dry_run:
                self._remove_uncommitted_reports(written, record)
            record.seconds += time.monotonic() - started
            error: BaseException = exc
            if isinstance(exc, sqlite3.Error):
                error = StepFailed(
                    f"step {step.id!r}: database error: {exc}",
                    fix="check that the catalog is intact (sqlite3 FILE 'PRAGMA "
                    "integrity_check') and matches this procedure",
                )
            if not self.dry_run:
                record.state, record.error = _ended_by(error)
                self._persist(conn, record)
            if error is not exc:
                raise error from exc
            raise
        finally:
            if listener is not None:
                listener.step_ended()
            if self.rehearsal is not None:
                self.rehearsal.end_step()  # the connection lives on for the next step
            else:
                conn.close()

    # -- transactions: a run commits; a plan's steps are savepoints never committed
    def _begin(self, conn: journal.TrackedConnection) -> None:
        if self.rehearsal is not None:
            self.rehearsal.begin_step()
        else:
            conn.execute("BEGIN IMMEDIATE")

    def _commit(self, conn: journal.TrackedConnection, step_id: str) -> None:
        if self.rehearsal is not None:
            self.rehearsal.commit_step()
        else:
            self._crash_point(f"commit {step_id} before")
            conn.execute("COMMIT")
            self._crash_point(f"commit {step_id} after")

    def _rollback(self, conn: journal.TrackedConnection) -> None:
        if self.rehearsal is not None:
            self.rehearsal.undo_step()
        else:
            _rollback(conn)

    # -- steps' helpers ------------------------------------------------------
    def _variables(self) -> dict[str, Any]:
        steps = {
            rec.step_id: {
                "outputs": rec.outputs,
                "state": rec.state.value,  # plain text for templates
                "changes": rec.changes,
                "loss": rec.loss,
                "reports": rec.reports,
            }
            for rec in [*self.inputs.values(), *self.records.values()]
            if rec.state.finished
        }
        return {**self.request.params, "steps": steps}

    def _render(
        self, step: Step, where: tuple[str, ...], value: Any, variables: dict[str, Any]
    ) -> Any:
        try:
            return render_value(value, variables)
        except TemplateProblem as exc:
            raise PlaybookError(
                [self._diagnostic(step, where, f"expression fails: {exc}")],
                f"step {step.id!r}: expression fails: {exc}",
            ) from exc

    def _validate_args(self, step: Step, args: dict[str, Any]) -> None:
        schema = self.request.registry.action_schema(step.action)
        if is_valid(schema, args) is True:  # as the validator below (formats unchecked)
            return
        from jsonschema import Draft202012Validator  # only to explain what is wrong

        validator = Draft202012Validator(schema)
        problems = [
            self._diagnostic(step, ("args", *error.absolute_path), error.message)
            for error in validator.iter_errors(args)
        ]
        if problems:
            raise PlaybookError(
                problems,
                f"step {step.id!r}: arguments are invalid once "
                "rendered with these params: " + problems[0].message,
            )

    def _diagnostic(self, step: Step, where: tuple[Any, ...], message: str) -> Diagnostic:
        path = ("steps", step.index, *where)
        mark = mark_for_path(self.request.playbook.raw, path)
        return Diagnostic(str(self.request.playbook.path), mark.line, mark.col, message, path)

    def _remove_uncommitted_reports(self, written: list[str], record: StepRecord) -> None:
        """A refused step's changes are rolled back; its reports go with them, so
        none describes work that was never committed (those of batches it
        committed before stay: they describe what the catalogs hold)."""
        for path in written:
            if path not in record.reports:
                with contextlib.suppress(RecoverError, OSError):
                    self.media.remove(path)

    def _gate_loss(self, record: StepRecord) -> None:
        """Refuse (and so roll back) once the run's loss exceeds the playbook's budget."""
        tally = LossTally.of(self.records.values(), self.request.allow_loss)
        over = tally.exceeded()
        if not over:
            return
        unit = over[0]
        total, allowed = tally.totals[unit], tally.allowed_for(unit) or 0  # never unlimited
        kept = self._committed.loss.get(unit, 0)
        batches = (
            f"; its batches committed before this one stay, with {kept:,} {unit} "
            "lost, within the budget"
            if kept and not self.dry_run
            else "; nothing of this step was committed"
        )
        raise LossBudgetExceeded(
            f"step {record.step_id!r} would bring the data loss to {total:,} {unit}; "
            f"the playbook allows {allowed:,}{batches}",
            fix="review the loss with `recover plan`; if it is acceptable, "
            + self._how_to_allow(unit, total),
        )

    def _how_to_allow(self, unit: str, total: int) -> str:
        """The way this playbook lets an operator raise the budget: its param when
        safety.allow_loss.<unit> is `{{ param }}`, else the playbook itself."""
        raw = self.request.playbook.allow_loss.get(unit)
        match = re.fullmatch(r"\s*\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}\s*", str(raw))
        if match and match.group(1) in self.request.playbook.params:
            return f"run again with --param {match.group(1)}={total} (or more)"
        return f"raise safety.allow_loss.{unit} in the playbook to {total:,} (or more)"

    def _crash_point(self, what: str) -> None:
        """A numbered crash point of a real run (runner.engine.crash; tests only)."""
        if crash.ACTIVE and not self.dry_run:
            crash.point(what)

    def _checkpoint(self, ctx: Context) -> None:
        self._gate_loss(ctx.record)
        ctx.record.media_log = self.media.log.to_json()
        journal.write_step(ctx.db, self.run_id, ctx.record)
        if self.rehearsal is not None:
            self.rehearsal.checkpoint()
        else:
            self._crash_point(f"checkpoint {ctx.step_id} before")
            ctx.db.execute("COMMIT")
            self._crash_point(f"checkpoint {ctx.step_id} after")
        self._committed = copy.deepcopy(ctx.record)
        if self.rehearsal is None:
            ctx.db.execute("BEGIN IMMEDIATE")

    def _restore(self, conn: journal.TrackedConnection, record: StepRecord) -> None:
        """After a rollback the record must again say only what was committed.

        The journal row is the truth: an interrupt that lands just after a
        checkpoint's COMMIT returns, before the engine noted it, must not put
        the previous checkpoint's counts back."""
        kept = self._committed
        with contextlib.suppress(sqlite3.Error):  # unreadable: the error handled says why
            kept = journal.read_steps(conn, self.run_id).get(record.step_id, kept)
        record.changes, record.loss = kept.changes, kept.loss
        record.loss_examples, record.outputs = kept.loss_examples, kept.outputs
        record.reports, record.state_data = kept.reports, kept.state_data
        record.media_log = kept.media_log

    def _persist(self, conn: journal.TrackedConnection, record: StepRecord) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
            # Keep the last checkpoint's counts: they are what the catalogs hold.
            journal.write_step(conn, self.run_id, record)
            conn.execute("COMMIT")
        except sqlite3.Error:
            _rollback(conn)

    def _persist_alone(self, record: StepRecord) -> None:
        if self.rehearsal is not None:  # inside the plan's transaction, like the rest
            conn = self.rehearsal.connection({}, {})
            journal.write_step(conn, self.run_id, record)
            return
        conn = journal.connect(self.journal_path)
        try:
            self._persist(conn, record)
        finally:
            conn.close()

    def _connect(self, action: Action) -> journal.TrackedConnection:
        wanted: dict[str, tuple[str, Path]] = {}
        for alias, rel in action.databases(self.request.site).items():
            if not _ALIAS.match(alias) or alias in ("main", "temp"):
                raise StepFailed(f"action {action.name} asked for a bad database alias")
            wanted[alias] = (rel, self._database_path(rel))
        if self.rehearsal is not None:
            attached = self.rehearsal.attached.values()
            current = {rel: self.media.path(rel) for rel, _, _ in attached}
            conn = self.rehearsal.connection(wanted, current)
        else:
            conn = journal.connect(self.journal_path)
        try:
            for alias, (rel, path) in wanted.items():
                try:
                    if self.rehearsal is not None:
                        self.rehearsal.attach(alias, rel, path)
                        continue
                    conn.execute(f"ATTACH DATABASE ? AS {alias}", (str(path),))
                    conn.execute(f"SELECT count(*) FROM {alias}.sqlite_master").fetchone()
                    if not self.dry_run:
                        mode = conn.execute(f"PRAGMA {alias}.journal_mode").fetchone()[0]
                        if str(mode).lower() == "wal":
                            conn.execute(f"PRAGMA {alias}.journal_mode=DELETE")
                        conn.execute(f"PRAGMA {alias}.synchronous=FULL")
                except sqlite3.DatabaseError as exc:
                    raise MediaError(
                        f"{rel} is not a readable SQLite database ({exc})",
                        fix=f"restore {rel} from a backup, or point "
                        "the playbook's site at the right file",
                    ) from exc
        except BaseException:
            if self.rehearsal is None:
                conn.close()
            raise
        return conn

    def _database_path(self, rel: str) -> Path:
        if not self.media.exists(rel):
            raise SiteError(
                f"database {rel} does not exist in site {self.request.site.root}",
                fix="check --site and the playbook's site section",
            )
        source = self.media.path(rel)
        with contextlib.suppress(OSError):
            mode = source.stat().st_mode
            if not stat.S_ISREG(mode):
                raise MediaError(
                    f"database {rel} is not a regular file (it is a "
                    f"{'directory' if stat.S_ISDIR(mode) else 'special file'})",
                    fix=f"replace {rel} with the SQLite file, or point the playbook's site at it",
                )
        if not self.dry_run or self.rehearsal is not None:
            return source
        assert self.scratch is not None
        known = self._copies.get(rel)
        if known and known[0] == source:
            return known[1]
        copy = self.scratch / f"db{len(self._copies)}-{Path(rel).name}"
        copy_database(source, copy)
        self._copies[rel] = (source, copy)
        return copy


def copy_database(source: Path, target: Path) -> None:
    """Copy a SQLite file with its hot journal or its write-ahead log, so the
    copy recovers (or reads) like the original."""
    shutil.copyfile(source, target)
    for suffix in ("-journal", "-wal"):
        beside = source.with_name(source.name + suffix)
        if beside.exists():
            shutil.copyfile(beside, target.with_name(target.name + suffix))


def _ended_by(error: BaseException) -> tuple[StepState, str]:
    """The journal's state and error text for a step that did not finish."""
    if isinstance(error, KeyboardInterrupt):
        return StepState.INTERRUPTED, "interrupted"
    state = StepState.REFUSED if isinstance(error, SafetyRefusal) else StepState.FAILED
    text = getattr(error, "message", None)
    return state, text or f"internal error: {type(error).__name__}: {error}"


def _rollback(conn: journal.TrackedConnection) -> None:
    """Undo the open transaction; statements left pending by a failure go first."""
    conn.close_cursors()
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    except sqlite3.Error:
        pass


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")
