"""A tiny StepContext for calling actions directly (fast unit and property tests)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from runner.contract import Action
from runner.engine.media import MediaStore
from runner.engine.reports import free_name, make_environment, render_report
from runner.site import Site
from tests.helpers import TEMPLATES_DIR

T = TypeVar("T")
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


class FakeContext:
    def __init__(
        self,
        root: Path,
        *,
        dry_run: bool = False,
        state: dict[str, Any] | None = None,
        locations: dict[str, str] | None = None,
    ) -> None:
        self.site = Site(root, locations or {})
        self.db = None
        self.media = MediaStore(self.site, dry_run=dry_run)
        self.dry_run = dry_run
        self.now = NOW
        self.step_id = "step"
        self.run_id = "run"
        self.state: dict[str, Any] = dict(state or {})
        self.changes: dict[tuple[str, str], int] = {}
        self.losses: dict[str, int] = {}
        self.outputs: dict[str, Any] = {}
        self.notes: list[tuple[str, str]] = []
        self.checkpoints: list[dict[str, Any]] = []
        self.reports: list[str] = []
        self._env = make_environment(root / "templates", [TEMPLATES_DIR])

    def changed(self, target: str, what: str, count: int = 1) -> None:
        self.changes[(target, what)] = self.changes.get((target, what), 0) + count

    def lost(self, unit: str, count: int, examples: Iterable[str] = ()) -> None:
        self.losses[unit] = self.losses.get(unit, 0) + count

    def output(self, **values: Any) -> None:
        self.outputs.update(values)

    def note(self, message: str) -> None:
        self.notes.append(("info", message))

    def warn(self, message: str) -> None:
        self.notes.append(("warning", message))

    def checkpoint(self, state: Mapping[str, Any]) -> None:
        self.state = dict(state)
        self.checkpoints.append(dict(state))

    def report(self, template: str, dest: str, context: Mapping[str, Any]) -> str:
        target = free_name(self.media, dest, self.now)
        written = render_report(self._env, self.media, template, target, context)
        self.reports.append(written)
        return written

    def progress(self, items: Iterable[T], total: int | None, label: str) -> Iterator[T]:
        return iter(items)

    def confirmed(self, key: str) -> bool:
        return False

    @property
    def warnings(self) -> list[str]:
        return [text for level, text in self.notes if level == "warning"]


def run_action(action: Action, ctx: FakeContext) -> FakeContext:
    """Checks first (all must hold), then run: what the engine does, minus the journal."""
    failed = [c for c in action.check(ctx) if not c.ok]  # type: ignore[arg-type]
    assert not failed, failed
    action.run(ctx)  # type: ignore[arg-type]
    return ctx
