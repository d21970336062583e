"""The dry run: what `recover run` would do, computed by doing it.

The site's journal is copied to a scratch directory; the catalogs are read in
place through one transaction that is always rolled back, with every write
held in memory (runner.engine.rehearsal); media writes land in an overlay. So
the prediction is exact (the same code runs), no catalog is copied, and the
site is not changed by a single byte, even if the plan is killed.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from runner import clock
from runner.engine import journal, lock
from runner.engine.fingerprint import describe_differences, fingerprint
from runner.engine.journal import RunState, StepRecord, StepState
from runner.engine.loss import LossTally
from runner.engine.rehearsal import RestartOnCopies
from runner.engine.request import run_key
from runner.engine.session import Request, Session, StepOutcome, copy_database
from runner.errors import EXIT_FAILED, EXIT_OK, EXIT_REFUSED, StalePlan

PLAN_FORMAT = 1


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
            "site": str(request.site.root),
            "fingerprint": self.fingerprint,
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
    with lock.reading(request.site.state_dir):
        return _plan(request, on_step)


def _plan(request: Request, on_step: Callable[[StepOutcome], None] | None) -> PlanResult:
    state_dir = request.site.state_dir
    # The fingerprint hashes every catalog; the rehearsal changes no byte and no
    # run can start meanwhile (the lock), so it is read alongside the steps.
    hashing = ThreadPoolExecutor(1, thread_name_prefix="recover-fingerprint")
    pending_prints = hashing.submit(fingerprint, request.site.root)
    scratch = Path(tempfile.mkdtemp(prefix="recover-plan-"))
    try:
        journal_path = scratch / "journal.sqlite"
        real_journal = state_dir / "journal.sqlite"
        if real_journal.exists():
            copy_database(real_journal, journal_path)
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
        shown = 0  # steps already passed to on_step

        def show(outcome: StepOutcome) -> None:
            nonlocal shown
            shown += 1
            if on_step is not None:
                on_step(outcome)

        try:
            outcomes = _rehearse(request, journal_path, run_id, moment, records, scratch, show)
        except RestartOnCopies:
            # Rare: a step replaced a catalog an earlier step had changed. Start
            # over on copies; the steps shown already come out the same again.
            seen = shown

            def show_rest(outcome: StepOutcome) -> None:
                nonlocal seen
                seen -= 1
                if seen < 0 and on_step is not None:
                    on_step(outcome)

            outcomes = _rehearse(
                request, journal_path, run_id, moment, records, scratch, show_rest, in_place=False
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        hashing.shutdown(wait=True)
    return PlanResult(request, outcomes, pending_prints.result(), run_state, moment)


def _rehearse(
    request: Request,
    journal_path: Path,
    run_id: str,
    moment: datetime,
    records: dict[str, StepRecord],
    scratch: Path,
    on_step: Callable[[StepOutcome], None],
    *,
    in_place: bool = True,
) -> list[StepOutcome]:
    session = Session(
        request,
        dry_run=True,
        journal_path=journal_path,
        run_id=run_id,
        clock=moment,
        records=copy.deepcopy(records),  # a restart begins from the same records
        scratch=scratch,
        in_place=in_place,
    )
    return session.execute(keep_going=True, on_step=on_step)


def fingerprint_digest(prints: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(prints, sort_keys=True).encode()).hexdigest()


def load_plan_file(path: Path, request: Request, *, recorded_digest: str | None) -> dict[str, Any]:
    """Check a saved plan still describes this playbook, these params and this site."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StalePlan(
            f"plan file {path} does not exist",
            fix="make one with `recover plan PLAYBOOK -o PLAN.json`",
        ) from None
    except (OSError, ValueError) as exc:
        raise StalePlan(f"plan file {path} is unreadable: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != PLAN_FORMAT:
        raise StalePlan(f"{path} is not a plan made by `recover plan -o`")
    why = []
    if data.get("playbook_sha256") != request.playbook.sha256:
        why.append("the playbook file changed since the plan was made")
    if data.get("params") != json.loads(json.dumps(request.params, default=str)):
        why.append(f"params differ: plan has {data.get('params')}, now {request.params}")
    if data.get("site") != str(request.site.root):
        why.append(f"the plan is for site {data.get('site')}, not {request.site.root}")
    old = data.get("fingerprint") or {}
    if recorded_digest is not None:
        if fingerprint_digest(old) != recorded_digest:
            why.append("this interrupted run was started from a different plan")
    else:
        why += describe_differences(old, fingerprint(request.site.root))
    if why:
        raise StalePlan(
            "the plan no longer matches the site:\n  " + "\n  ".join(why),
            fix="make a fresh plan with `recover plan ... -o PLAN.json` and review it",
        )
    return data
