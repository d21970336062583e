"""The StepContext the engine hands to an action (see runner.contract)."""

from __future__ import annotations

import os
import signal
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, TypeVar

from jinja2.sandbox import SandboxedEnvironment
from loguru import logger

from runner.engine import crash
from runner.engine.claims import ReportClaims
from runner.engine.journal import StepRecord
from runner.engine.media import MediaStore
from runner.engine.progress import Meter, ProgressListener
from runner.engine.reports import free_name, render_report
from runner.site import Site

T = TypeVar("T")
MAX_LOSS_EXAMPLES = 50


class Context:
    """Collects what a step does; owns nothing the engine must clean up."""

    def __init__(
        self,
        *,
        site: Site,
        db: sqlite3.Connection,
        media: MediaStore,
        dry_run: bool,
        now: datetime,
        run_id: str,
        record: StepRecord,
        confirmations: set[str],
        reports: SandboxedEnvironment,
        on_checkpoint: Callable[[Context], None],
        claims: ReportClaims,
        listener: ProgressListener | None = None,
    ) -> None:
        self.site = site
        self.db = db
        self.media = media
        self.dry_run = dry_run
        self.now = now
        self.run_id = run_id
        self.step_id = record.step_id
        self.record = record
        self.state: dict[str, Any] = dict(record.state_data)
        self._confirmations = confirmations
        self._reports = reports
        self._on_checkpoint = on_checkpoint
        self._claims = claims
        self._log = logger.bind(step=record.step_id)
        # Notes, warnings and reports are shown in the step's block: the log file
        # keeps them, the console sink leaves them out (runner.terminal).
        self._shown = self._log.bind(console="never")
        self._meter = Meter(self._log, listener)
        step_crash = _crash_point(
            record.step_id, "RECOVER_CRASH_IN_PLAN" if dry_run else "RECOVER_CRASH_AT"
        )
        self._crash_after_report = step_crash == "report"
        self._crash_at = step_crash if isinstance(step_crash, int) else None
        self._items_seen = 0
        self._crash_points = crash.ACTIVE and not dry_run

    # -- recording ---------------------------------------------------------
    def changed(self, target: str, what: str, count: int = 1) -> None:
        if count:
            bucket = self.record.changes.setdefault(target, {})
            bucket[what] = bucket.get(what, 0) + count

    def lost(self, unit: str, count: int, examples: Iterable[str] = ()) -> None:
        if count <= 0:
            return
        self.record.loss[unit] = self.record.loss.get(unit, 0) + count
        room = MAX_LOSS_EXAMPLES - len(self.record.loss_examples)
        for example in examples:
            if room <= 0:
                break
            self.record.loss_examples.append(str(example))
            room -= 1

    def output(self, **values: Any) -> None:
        self.record.outputs.update(values)

    def note(self, message: str) -> None:
        self.record.notes.append({"level": "info", "text": message})
        self._shown.info(message)

    def warn(self, message: str) -> None:
        self.record.notes.append({"level": "warning", "text": message})
        self._shown.warning(message)

    def confirmed(self, key: str) -> bool:
        return key in self._confirmations

    # -- work helpers ------------------------------------------------------
    def checkpoint(self, state: Mapping[str, Any]) -> None:
        self.state = dict(state)
        self.record.state_data = dict(state)
        self._on_checkpoint(self)

    def report(self, template: str, dest: str, context: Mapping[str, Any]) -> str:
        target = self._claims.name_for(dest, lambda: free_name(self.media, dest, self.now))
        written = render_report(self._reports, self.media, template, target, context)
        if self._crash_after_report:
            os.kill(os.getpid(), signal.SIGKILL)  # test hook: killed before the step commits
        self.record.reports.append(written)
        self._shown.info(
            "report {} {}", "would be written to" if self.dry_run else "written to", written
        )
        return written

    def advance(self, label: str, done: int, total: int | None = None) -> None:
        self._meter.measure(label, done, total)

    def progress(self, items: Iterable[T], total: int | None, label: str) -> Iterator[T]:
        meter = self._meter
        meter.begin(label, total)
        ask_at = 1
        count = 0
        for count, item in enumerate(items, start=1):
            yield item
            self._items_seen += 1
            if self._crash_at is not None and self._items_seen >= self._crash_at:
                os.kill(os.getpid(), signal.SIGKILL)  # test hook: a power cut, mid-step
            if self._crash_points:
                crash.point(f"progress {self.step_id} {label}")
            if count >= ask_at:
                ask_at = count + meter.update(count, total)
        meter.update(count, total, final=True)


def _crash_point(step_id: str, variable: str) -> int | str | None:
    """RECOVER_CRASH_AT=<step_id>:<n>: SIGKILL after n progress items;
    <step_id>:report: SIGKILL right after the step's first report (tests only).
    RECOVER_CRASH_IN_PLAN does the same in a plan (and only there)."""
    spec = os.environ.get(variable, "")
    target, _, point = spec.partition(":")
    if target != step_id:
        return None
    if point == "report":
        return point
    return int(point) if point.isdigit() else None
