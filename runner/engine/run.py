"""`recover run`: lock the site, gate on confirmation, execute, journal.

Running the same playbook with the same params on the same site again
resumes an interrupted run (same run id, same clock) or does nothing if it
finished; the journal says which steps are done.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from loguru import logger

from runner import clock
from runner.engine import claims, journal, lock, planfile
from runner.engine.journal import RunRecord, RunState
from runner.engine.lock import SiteLock, current_user
from runner.engine.plan import PlanResult, make_plan
from runner.engine.planfile import SavedPlan
from runner.engine.preflight import preflight, refuse_if_any
from runner.engine.request import run_key
from runner.engine.selection import borrowed_inputs
from runner.engine.session import Request, Session, StepOutcome
from runner.errors import ConfirmationRequired, RecoverError, SiteLocked, StalePlan


@dataclass
class RunResult:
    run_id: str
    state: RunState  # done (a failure raises)
    outcomes: list[StepOutcome]
    resumed: bool
    log_path: Path | None
    already_done: bool = False  # it had finished before: nothing ran


Confirm = Callable[[PlanResult], bool]


def execute_run(
    request: Request,
    *,
    yes: bool,
    confirm: Confirm | None,
    plan: SavedPlan | None = None,
    new_run: bool = False,
    on_step: Callable[[StepOutcome], None] | None = None,
) -> RunResult:
    """Run the playbook. `confirm` is None when no one can be asked (no terminal).

    A saved plan is checked before anything else (even "already finished"),
    then the selection's inputs, then confirmation; all before the site is
    changed at all (not even `.recover/` is created)."""
    site = request.site
    journal_path = site.state_dir / "journal.sqlite"
    key = run_key(request)
    peeked, peeked_records = (None, {}) if new_run else journal.peek(journal_path, key)
    seen_steps = _check_saved_plan(plan, request, peeked) if plan is not None else None
    own = {} if peeked is None or peeked.state == RunState.DONE else peeked_records
    inputs = borrowed_inputs(journal_path, request.playbook, request.params, request.selection, own)
    if peeked is None or peeked.state != RunState.DONE:
        # Refuse before creating anything in the site (not even .recover/); a
        # resumed run is checked at its own clock, as its steps will run.
        resumed_at = datetime.fromisoformat(peeked.clock) if peeked is not None else None
        _check_inputs(request, own, resumed_at or clock.now())
        _confirm_destructive(request, own, yes=yes, confirm=confirm)
    with SiteLock(site.state_dir, f"recover run {request.playbook.name}"):
        if seen_steps is not None and planfile.journal_steps(journal_path) != seen_steps:
            raise StalePlan(
                "another run changed the site after the plan was checked",
                fix=planfile.FRESH_PLAN_FIX,
            )
        conn = journal.connect(journal_path)
        try:
            latest = None if new_run else journal.latest_run(conn, key)
            if latest is not None and latest.state == RunState.DONE:
                records = journal.read_steps(conn, latest.run_id)
                return RunResult(
                    latest.run_id,
                    RunState.DONE,
                    _already(request, records),
                    False,
                    None,
                    already_done=True,
                )
            records = journal.read_steps(conn, latest.run_id) if latest else {}
            if latest is not None:
                run_id, moment = latest.run_id, datetime.fromisoformat(latest.clock)
                logger.info("resuming run {} (started {})", run_id, latest.clock)
            else:
                run_id, moment = _new_run(conn, request, key, plan)
            journal.claim_run(conn, run_id, os.getpid())
        finally:
            conn.close()
        log_path = site.state_dir / "logs" / f"{run_id}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        sink = logger.add(
            log_path,
            level="DEBUG",
            enqueue=False,
            format="{time:YYYY-MM-DD HH:mm:ss.SSS} {level} {extra} {message}",
        )
        try:
            session = Session(
                request,
                dry_run=False,
                journal_path=journal_path,
                run_id=run_id,
                clock=moment,
                records=records,
                inputs=inputs,
            )
            try:
                outcomes = session.execute(keep_going=False, on_step=on_step)
            except (RecoverError, KeyboardInterrupt) as exc:
                state = (
                    RunState.INTERRUPTED if isinstance(exc, KeyboardInterrupt) else RunState.FAILED
                )
                _finish(journal_path, run_id, state, getattr(exc, "message", "interrupted"))
                raise
            _finish(journal_path, run_id, RunState.DONE, None)
            claims.release_run(site.state_dir, run_id)
            return RunResult(run_id, RunState.DONE, outcomes, latest is not None, log_path)
        finally:
            logger.remove(sink)


def _check_saved_plan(
    plan: SavedPlan, request: Request, latest: RunRecord | None
) -> dict[str, list[str]] | None:
    """Check the plan against the site (under the plan's shared lock, so no run
    changes it meanwhile); returns the journal's finished steps as seen then,
    or None when the run this plan started is resumed or finished.

    A run started from this plan and interrupted changed the site itself:
    then only the plan's identity is compared. One that finished means there
    is nothing to do, as without a plan."""
    digest = planfile.fingerprint_digest(plan.data.get("fingerprint") or {})
    mine = latest is not None and latest.plan_fingerprint == digest
    with lock.reading(request.site.state_dir):
        if mine and latest is not None and latest.state == RunState.DONE:
            planfile.check_plan(plan, request, recorded_digest=digest)
            return None
        recorded = latest.plan_fingerprint if latest is not None else None
        planfile.check_plan(plan, request, recorded_digest=recorded)
        if recorded is not None:
            return None
        return planfile.journal_steps(request.site.state_dir / "journal.sqlite")


def _check_inputs(
    request: Request, records: dict[str, journal.StepRecord], moment: datetime
) -> None:
    """Every pending step's inputs, before the first one changes anything: a run
    that would fail on them is refused whole (runner.engine.preflight)."""
    try:
        with lock.reading(request.site.state_dir):
            problems = preflight(request, records, moment)
    except SiteLocked:
        return  # taking the run's own lock refuses, naming the holder
    refuse_if_any(problems)


def _confirm_destructive(
    request: Request, records: dict[str, journal.StepRecord], *, yes: bool, confirm: Confirm | None
) -> None:
    registry = request.registry
    pending = [
        s
        for s in request.playbook.steps
        if request.selected(s)
        and registry.info(s.action).destructive
        and (records.get(s.id) is None or not records[s.id].state.finished)
    ]
    if not pending or yes:
        return
    names = ", ".join(s.id for s in pending)
    if confirm is None:
        raise ConfirmationRequired(
            f"steps that can lose data need confirmation ({names}), and there is no terminal "
            "to ask; nothing was changed",
            fix="review `recover plan`, then re-run with --yes",
        )
    plan = make_plan(request)  # before the run takes the lock: a plan reads under its own
    if not confirm(plan):
        raise ConfirmationRequired("not confirmed; nothing was changed")


def _new_run(
    conn: sqlite3.Connection, request: Request, key: str, plan: SavedPlan | None
) -> tuple[str, datetime]:
    moment = clock.now()
    run_id = f"{moment.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    digest = None
    if plan is not None:
        digest = planfile.fingerprint_digest(plan.data.get("fingerprint") or {})
    journal.insert_run(
        conn,
        RunRecord(
            run_id=run_id,
            run_key=key,
            playbook=str(request.playbook.path),
            playbook_name=request.playbook.name,
            playbook_sha=request.playbook.sha256,
            params_json=journal.dump(request.params),
            state=RunState.RUNNING,
            clock=moment.isoformat(timespec="seconds"),
            started_at=clock.now().isoformat(timespec="seconds"),
            host=socket.gethostname(),
            pid=os.getpid(),
            user=current_user(),
            plan_fingerprint=digest,
        ),
    )
    return run_id, moment


def _finish(journal_path: Path, run_id: str, state: RunState, error: str | None) -> None:
    conn = journal.connect(journal_path)
    try:
        journal.set_run_state(conn, run_id, state, clock.now().isoformat(timespec="seconds"), error)
    finally:
        conn.close()


def _already(request: Request, records: dict[str, journal.StepRecord]) -> list[StepOutcome]:
    registry = request.registry
    out = []
    for step in request.playbook.steps:
        if not request.selected(step):
            continue
        rec = records.get(step.id) or journal.StepRecord(step.id, step.index, step.action)
        cls = registry.action(step.action)
        out.append(StepOutcome(step, rec, cls.destructive, cls.summary, already=True))
    return out
