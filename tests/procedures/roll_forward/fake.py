"""A tiny stand-in for the engine's StepContext, for unit tests of the actions.

It runs an action the way the engine does: one connection whose main database
is a scratch journal, the action's databases attached, BEGIN IMMEDIATE, check,
run, COMMIT; checkpoint commits and begins again. `crash_after` simulates a
SIGKILL after n progress items (the transaction since the last checkpoint is
rolled back, as SQLite would on restart).
"""

from __future__ import annotations

import csv
import io
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from runner.contract import Action
from runner.engine.media import MediaStore
from runner.errors import PreconditionFailed
from runner.site import Site
from tests.helpers import TEMPLATES_DIR

T = TypeVar("T")
NOW = datetime(2026, 1, 6, 9, 30, tzinfo=UTC)


class Killed(BaseException):
    """The simulated SIGKILL."""


def _csvrow(values: Iterable[Any]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(["" if v is None else v for v in values])
    return buf.getvalue()


class FakeContext:
    def __init__(
        self,
        site: Site,
        db: sqlite3.Connection,
        media: MediaStore,
        *,
        state: dict[str, Any] | None = None,
        crash_after: int | None = None,
        confirm: Iterable[str] = (),
    ) -> None:
        self.site, self.db, self.media = site, db, media
        self.dry_run = media.dry_run
        self.now = NOW
        self.step_id, self.run_id = "step", "run"
        self.state: dict[str, Any] = dict(state or {})
        self.changes: dict[str, dict[str, int]] = {}
        self.losses: dict[str, int] = {}
        self.outputs: dict[str, Any] = {}
        self.notes: list[str] = []
        self.warnings: list[str] = []
        self.reports: list[str] = []
        self.checkpoints = 0
        self._crash_after = crash_after
        self._items = 0
        self._confirm = set(confirm)
        self._env = SandboxedEnvironment(
            loader=FileSystemLoader(str(TEMPLATES_DIR)),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self._env.filters["csvrow"] = _csvrow

    def changed(self, target: str, what: str, count: int = 1) -> None:
        bucket = self.changes.setdefault(target, {})
        bucket[what] = bucket.get(what, 0) + count

    def lost(self, unit: str, count: int, examples: Iterable[str] = ()) -> None:
        if count > 0:
            self.losses[unit] = self.losses.get(unit, 0) + count

    def output(self, **values: Any) -> None:
        self.outputs.update(values)

    def note(self, message: str) -> None:
        self.notes.append(message)

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def checkpoint(self, state: Mapping[str, Any]) -> None:
        self.state = dict(state)
        self.db.execute("COMMIT")
        self.db.execute("BEGIN IMMEDIATE")
        self.checkpoints += 1

    def report(self, template: str, dest: str, context: Mapping[str, Any]) -> str:
        target = dest
        n = 1
        while self.media.exists(target):
            n += 1
            target = f"{dest}.{n}"
        with self.media.writer(target) as handle:
            for chunk in self._env.get_template(template).generate(**context):
                handle.write(chunk.encode())
        self.reports.append(target)
        return target

    def progress(self, items: Iterable[T], total: int | None, label: str) -> Iterator[T]:
        for item in items:
            yield item
            self._items += 1
            if self._crash_after is not None and self._items >= self._crash_after:
                raise Killed()

    def advance(self, label: str, done: int, total: int | None = None) -> None:
        self.advanced = (label, done, total)

    def confirmed(self, key: str) -> bool:
        return key in self._confirm


def run_action(
    action: Action,
    root: Path,
    *,
    dry_run: bool = False,
    state: dict[str, Any] | None = None,
    crash_after: int | None = None,
    confirm: Iterable[str] = (),
) -> FakeContext:
    """Run one action like the engine would; exceptions propagate after a rollback."""
    site = Site(root)
    media = MediaStore(site, dry_run=dry_run)
    db = sqlite3.connect(":memory:")
    for alias, rel in action.databases(site).items():
        path = site.path(rel)
        if dry_run:
            copy = media.overlay_dir / f"copy-{alias}.sqlite"  # type: ignore[operator]
            copy.write_bytes(path.read_bytes())
            path = copy
        db.execute(f"ATTACH DATABASE ? AS {alias}", (str(path),))
    ctx = FakeContext(site, db, media, state=state, crash_after=crash_after, confirm=confirm)
    db.execute("BEGIN IMMEDIATE")
    try:
        failed = [c for c in action.check(ctx) if not c.ok]  # type: ignore[arg-type]
        if failed:
            raise PreconditionFailed(
                "; ".join(f"{c.name}: {c.detail}" for c in failed), fix=failed[0].fix
            )
        action.run(ctx)  # type: ignore[arg-type]
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    finally:
        db.close()
    return ctx
