"""The StepContext the engine hands to an action (see runner.contract)."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, TypeVar

from jinja2.sandbox import SandboxedEnvironment
from loguru import logger

from runner.engine.claims import ReportClaims
from runner.engine.journal import StepRecord
from runner.engine.media import MediaStore
from runner.engine.reports import free_name, render_report
from runner.site import Site

T = TypeVar("T")
MAX_LOSS_EXAMPLES = 50
PROGRESS_EVERY_SECONDS = 2.0


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
        crash = _crash_point(
            record.step_id, "RECOVER_CRASH_IN_PLAN" if dry_run else "RECOVER_CRASH_AT"
        )
        self._crash_after_report = crash == "report"
        self._crash_at = crash if isinstance(crash, int) else None
        self._items_seen = 0

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
        self._log.info(message)

    def warn(self, message: str) -> None:
        self.record.notes.append({"level": "warning", "text": message})
        self._log.warning(message)

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
        self._log.info(
            "report {} {}", "would be written to" if self.dry_run else "written to", written
        )
        return written

    def progress(self, items: Iterable[T], total: int | None, label: str) -> Iterator[T]:
        started = last = time.monotonic()
        for count, item in enumerate(items, start=1):
            yield item
            self._items_seen += 1
            if self._crash_at is not None and self._items_seen >= self._crash_at:
                os.kill(os.getpid(), signal.SIGKILL)  # test hook: a power cut, mid-step
            if count & 255 == 0:
                current = time.monotonic()
                if current - last >= PROGRESS_EVERY_SECONDS:
                    last = current
                    share = f" ({100 * count / total:.0f}%)" if total else ""
                    rate = count / (current - started)
                    self._log.info(
                        "{}: {:,}{}{} at {:,.0f}/s",
                        label,
                        count,
                        f"/{total:,}" if total else "",
                        share,
                        rate,
                    )


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
