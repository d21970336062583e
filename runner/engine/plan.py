"""The dry run: what `recover run` would do, computed by doing it.

The site's journal is copied to a scratch directory; the catalogs are read in
place through one transaction that is always rolled back, with every write
held in memory (runner.engine.rehearsal); media writes land in an overlay. So
the prediction is exact (the same code runs), no catalog is copied, and the
site is not changed by a single byte, even if the plan is killed.

The checks before the first step (runner.engine.preflight) and the site's
fingerprint read every catalog once more each; they run in helper threads
while the steps are rehearsed, and the steps' outcomes are held back until
the checks' verdict, so a plan shows what it would have shown had they run first.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from loguru import logger

from runner import clock
from runner.contract import Check
from runner.engine import journal, lock
from runner.engine.fingerprint import fingerprint
from runner.engine.heldfiles import keeping_sqlite_files_open
from runner.engine.journal import RunState, StepRecord, StepState
from runner.engine.loss import LossTally
from runner.engine.planfile import PLAN_FORMAT, evidence, repeat_warning
from runner.engine.preflight import StepProblems, preflight
from runner.engine.progress import ProgressListener, current_listener, listening
from runner.engine.rehearsal import RestartOnCopies
from runner.engine.request import run_key
from runner.engine.selection import borrowed_inputs
from runner.engine.session import Request, Session, StepOutcome, copy_database
from runner.errors import EXIT_FAILED, EXIT_OK, EXIT_REFUSED


class PriorRun(StrEnum):
    """What the journal holds for this playbook and params (None: no run yet)."""

    RESUMABLE = "resumable"
    DONE = "done"


class Verdict(StrEnum):
    """What `recover run` would do, as the plan's last line and JSON say."""

    OK = "ok"
    COMPLETE = "complete"  # the run already finished: nothing to do
    FAILED = "failed"
    REFUSED = "refused"


@dataclass
class PlanResult:
    request: Request
    outcomes: list[StepOutcome]
    fingerprint: dict[str, str]
    run_state: PriorRun | None
    created: datetime
    #: what a stale plan is later explained with (runner.engine.planfile.evidence)
    evidence: dict[str, Any] = field(default_factory=dict)
    #: a new run of a playbook that finished here with other params or steps: saying so
    repeats: str | None = None

    def destructive_pending(self) -> list[StepOutcome]:
        return [
            o
            for o in self.outcomes
            if o.destructive and not o.already and o.record.state != StepState.SKIPPED
        ]

    @property
    def loss(self) -> LossTally:
        return LossTally.of((o.record for o in self.outcomes), self.request.allow_loss)

    @property
    def verdict(self) -> Verdict:
        states = {o.record.state for o in self.outcomes}
        if StepState.REFUSED in states:
            return Verdict.REFUSED
        if StepState.FAILED in states:
            return Verdict.FAILED
        return Verdict.COMPLETE if self.run_state == PriorRun.DONE else Verdict.OK

    @property
    def exit_code(self) -> int:
        return {Verdict.REFUSED: EXIT_REFUSED, Verdict.FAILED: EXIT_FAILED}.get(
            self.verdict, EXIT_OK
        )

    def to_json(self) -> dict[str, Any]:
        request = self.request
        loss = self.loss
        return {
            "format": PLAN_FORMAT,
            "created": self.created.isoformat(timespec="seconds"),
            "playbook": str(request.playbook.path),
            "playbook_name": request.playbook.name,
            "playbook_sha256": request.playbook.sha256,
            "params": request.params,
            "param_defaults": {
                name: param.default
                for name, param in request.playbook.params.items()
                if param.has_default
            },
            "site": str(request.site.root),
            "selection": None if request.selection is None else list(request.selection),
            "confirmations": sorted(request.confirmations - set(request.playbook.confirm)),
            "fingerprint": self.fingerprint,
            **self.evidence,
            "run_state": self.run_state,
            "verdict": self.verdict,
            "allowed_loss": loss.allowed_json(),
            "total_loss": loss.totals,
            "steps": [_step_json(o) for o in self.outcomes],
        }


def _step_json(outcome: StepOutcome) -> dict[str, Any]:
    rec = outcome.record
    return {
        "id": rec.step_id,
        "action": rec.action,
        "summary": outcome.summary,
        "destructive": outcome.destructive,
        "status": "done already" if outcome.already else rec.state,
        "checks": [
            {"name": c.name, "ok": c.ok, "detail": c.detail, "fix": c.fix} for c in outcome.checks
        ],
        "changes": rec.changes,
        "loss": rec.loss,
        "committed_before": (
            {"changes": outcome.before.changes, "loss": outcome.before.loss}
            if outcome.before
            else None
        ),
        "loss_examples": rec.loss_examples,
        "media": rec.media,
        "reports": rec.reports,
        "notes": rec.notes,
        "outputs": rec.outputs,
        "error": rec.error,
    }


def make_plan(request: Request, on_step: Callable[[StepOutcome], None] | None = None) -> PlanResult:
    """The dry run. It reads a consistent site: it is refused while a run holds
    the site, and no run can start while it reads (a shared lock)."""
    with (
        lock.one_plan_at_a_time(request.site.root),
        lock.reading(request.site.state_dir),
        keeping_sqlite_files_open(),  # closed once the rehearsal's connections are
    ):
        result = _plan(request, on_step)
        result.evidence = evidence(request)
        if result.run_state is None:
            result.repeats = repeat_warning(request, run_key(request))
        return result


def _plan(request: Request, on_step: Callable[[StepOutcome], None] | None) -> PlanResult:
    state_dir = request.site.state_dir
    real_journal = state_dir / "journal.sqlite"
    # The fingerprint hashes every catalog and the preflight reads every row of
    # them; the rehearsal changes no byte and no run can start meanwhile (the
    # lock), so both read alongside the steps (sqlite3 and hashlib let go of
    # the GIL while they read).
    helpers = ThreadPoolExecutor(2, thread_name_prefix="recover-plan")
    pending_prints = helpers.submit(fingerprint, request.site.root)
    scratch = Path(tempfile.mkdtemp(prefix="recover-plan-"))
    try:
        journal_path = _scratch_journal(real_journal, scratch)
        conn = journal.connect(journal_path, shown_as=real_journal)
        try:
            latest = journal.latest_run(conn, run_key(request))
            run_id, moment = "plan", clock.now()
            run_state: PriorRun | None = None
            records: dict[str, StepRecord] = {}
            if latest is not None:
                run_id = latest.run_id
                records = journal.read_steps(conn, run_id)
                moment = datetime.fromisoformat(latest.clock)
                run_state = PriorRun.DONE if latest.state == RunState.DONE else PriorRun.RESUMABLE
        finally:
            conn.close()
        inputs = borrowed_inputs(
            real_journal, request.playbook, request.params, request.selection, records
        )
        checking = helpers.submit(preflight, request, copy.deepcopy(records), moment)

        def rehearse(
            show: Callable[[StepOutcome], None],
            blocked: dict[str, list[Check]],
            workdir: Path,
            *,
            in_place: bool = True,
        ) -> list[StepOutcome]:
            session = Session(
                request,
                dry_run=True,
                inputs=inputs,
                journal_path=workdir / "journal.sqlite",
                run_id=run_id,
                clock=moment,
                records=copy.deepcopy(records),  # a restart begins from the same records
                scratch=workdir,
                in_place=in_place,
            )
            session.blocked = blocked
            return session.execute(keep_going=True, on_step=show)

        def rehearse_all(
            show: Callable[[StepOutcome], None], blocked: dict[str, list[Check]], workdir: Path
        ) -> list[StepOutcome]:
            shown = 0  # steps already passed to show

            def counted(outcome: StepOutcome) -> None:
                nonlocal shown
                shown += 1
                show(outcome)

            try:
                return rehearse(counted, blocked, workdir)
            except RestartOnCopies:
                # Rare: a step replaced a catalog an earlier step had changed. Start
                # over on copies; the steps shown already come out the same again.
                seen = shown

                def show_rest(outcome: StepOutcome) -> None:
                    nonlocal seen
                    seen -= 1
                    if seen < 0:
                        show(outcome)

                return rehearse(show_rest, blocked, workdir, in_place=False)

        # The steps are rehearsed while the preflight runs, as if it found
        # nothing; what they show waits for its verdict. If it found a problem,
        # that rehearsal is stopped and dropped, and the plan starts over with
        # the steps it blocks shown failed, as a run would refuse them.
        held = _HeldForPreflight(checking, on_step, current_listener())
        try:
            with listening(held):
                outcomes = rehearse_all(held.show, {}, scratch)
            held.release()
        except (Exception, PreflightFound):
            problems = checking.result()
            if not problems:
                raise  # not a problem of the inputs: a bug, or a failure to report as is
            logger.bind(console="plain").info(
                "the checks before the first step found a problem; planning again with it"
            )
            again = scratch / "again"
            again.mkdir()
            _scratch_journal(real_journal, again)
            blocked = {p.step.id: p.failed for p in problems}
            outcomes = rehearse_all(on_step or _ignored, blocked, again)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        helpers.shutdown(wait=True)
    return PlanResult(request, outcomes, pending_prints.result(), run_state, moment)


def _scratch_journal(real_journal: Path, workdir: Path) -> Path:
    """A copy of the site's journal in `workdir` for a rehearsal to write in."""
    journal_path = workdir / "journal.sqlite"
    if real_journal.exists():
        copy_database(real_journal, journal_path)
    return journal_path


def _ignored(outcome: StepOutcome) -> None:
    """No one watches the steps as they are rehearsed."""


class PreflightFound(BaseException):
    """The preflight found a problem: the rehearsal that assumed none stops.

    A BaseException, as KeyboardInterrupt is: it may be raised anywhere in a
    step (from its progress), and no action's `except Exception` may keep it."""


class _HeldForPreflight:
    """Step outcomes held back until the preflight's verdict: passed on if it
    found nothing, dropped (PreflightFound) if it found a problem.

    It is also the steps' progress listener (passing everything on to the
    console's, if any), so a step is stopped at its next progress report, at
    most every few tenths of a second, once the preflight has found a problem,
    instead of being rehearsed to its end for nothing."""

    def __init__(
        self,
        checking: Future[list[StepProblems]],
        on_step: Callable[[StepOutcome], None] | None,
        listener: ProgressListener | None,
    ) -> None:
        self.checking = checking
        self.on_step = on_step
        self.listener = listener
        self.held: list[StepOutcome] = []

    def show(self, outcome: StepOutcome) -> None:
        self.held.append(outcome)
        if self.checking.done():
            self.release()

    def release(self) -> None:
        """Wait for the preflight; pass on what is held, or raise PreflightFound."""
        if self.checking.result():
            raise PreflightFound
        for outcome in self.held:
            if self.on_step is not None:
                self.on_step(outcome)
        self.held.clear()

    def _stop_if_found(self) -> None:
        if self.checking.done() and (
            self.checking.exception() is not None or self.checking.result()
        ):
            raise PreflightFound

    # -- the ProgressListener protocol --------------------------------------
    def step_started(self, step_id: str, action: str, *, dry_run: bool) -> None:
        self._stop_if_found()
        if self.listener is not None:
            self.listener.step_started(step_id, action, dry_run=dry_run)

    def advanced(self, label: str, done: int, total: int | None) -> None:
        self._stop_if_found()
        if self.listener is not None:
            self.listener.advanced(label, done, total)

    def step_ended(self) -> None:
        if self.listener is not None:
            self.listener.step_ended()
