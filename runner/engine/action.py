"""The contract between the engine and a procedure's actions.

An action is a class with a dotted `name` (`archive.mark_affected_locations`),
a JSON Schema for its arguments in `schemas/actions/<name>.schema.json`, and two
methods:

- `check(ctx)` yields the preconditions it needs on the live site, each as a
  `Check` (plan reports every failed one; run refuses the step);
- `run(ctx)` does the work. The same code serves the dry run: there
  `ctx.dry_run` is true, attached catalogs are scratch copies and media writes
  land in an overlay, so nothing under the site changes.

Actions never commit, print, or open site files directly: catalogs come
through `ctx.db` (the engine owns the transaction and records the step in the
journal in the same commit), media through `ctx.media`, reports through
`ctx.report`, and what changed / what was lost through `ctx.changed` and
`ctx.lost`, which feed the plan, the safety gates, the journal and `status`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

if TYPE_CHECKING:
    from runner.engine.media import MediaStore
    from runner.site import Site

T = TypeVar("T")


@dataclass(frozen=True)
class Check:
    """One precondition and whether it holds; `fix` tells the operator what to do."""

    name: str
    ok: bool
    detail: str = ""
    fix: str | None = None


def tables_check(
    db: sqlite3.Connection, tables: Iterable[str], name: str, fix: str, alias: str = "catalog"
) -> Check:
    """Whether the attached catalog has the tables an action needs: a site.catalog
    pointing at the wrong database shows up here first, with `fix`."""
    have = {
        row[0] for row in db.execute(f"SELECT name FROM {alias}.sqlite_master WHERE type='table'")
    }
    missing = [t for t in tables if t not in have]
    return Check(name, not missing, f"missing tables: {', '.join(missing)}" if missing else "", fix)


@dataclass
class Finding:
    """A static problem a procedure finds in a playbook (for `recover validate`).

    `path` is the JSON path from the playbook root, e.g. ("steps", 3, "action").
    """

    path: tuple[str | int, ...]
    message: str
    fix: str | None = None


class StepContext(Protocol):
    """What the engine hands an action. See runner.engine.context for the implementation."""

    site: Site
    db: sqlite3.Connection
    media: MediaStore
    dry_run: bool
    now: datetime  # the run's clock: fixed for the whole run, kept across resume
    step_id: str
    run_id: str
    state: dict[str, Any]  # progress saved by checkpoint(); survives an interrupted run

    def changed(self, target: str, what: str, count: int = 1) -> None:
        """Count a change, e.g. changed("object_locations", "state -> R", 120)."""

    def lost(self, unit: str, count: int, examples: Iterable[str] = ()) -> None:
        """Record data loss (checked against the playbook's safety budget)."""

    def output(self, **values: Any) -> None:
        """Values later steps can test in `when:` (steps.<id>.outputs.<key>)."""

    def note(self, message: str) -> None:
        """A line for the operator, kept in the journal and shown by plan/run."""

    def warn(self, message: str) -> None:
        """Like note, but flagged as a warning."""

    def checkpoint(self, state: Mapping[str, Any]) -> None:
        """Commit the work so far together with `state` (no-op effect in a dry run).

        For long steps that work in batches: after an interruption the step
        runs again with `ctx.state` set to the last checkpointed state.
        """

    def report(self, template: str, dest: str, context: Mapping[str, Any]) -> str:
        """Render a shipped (or site-overridden) template to a site-relative file.

        Never overwrites: an existing `dest` gets `.YYYYMMDD_HHMMSS` appended.
        Returns the path actually written. Iterators in `context` are streamed.
        """
        ...

    def progress(self, items: Iterable[T], total: int | None, label: str) -> Iterator[T]:
        """Iterate while logging progress for long steps."""
        ...

    def confirmed(self, key: str) -> bool:
        """Whether the playbook's safety.confirm or `--confirm KEY` grants `key`."""
        ...


class Action:
    """Base class of every playbook action. Subclasses set the class attributes."""

    name: ClassVar[str]
    summary: ClassVar[str]
    #: Can this action lose data? Then runs need --yes or an interactive yes.
    destructive: ClassVar[bool] = False
    #: The args schema inline; shipped actions leave this None and keep theirs in
    #: schemas/actions/<name>.schema.json instead.
    args_schema: ClassVar[dict[str, Any] | None] = None

    def __init__(self, args: Mapping[str, Any]) -> None:
        self.args: dict[str, Any] = dict(args)

    def databases(self, site: Site) -> dict[str, str]:
        """SQLite files to attach, alias -> site-relative path. Default: none."""
        return {}

    def check(self, ctx: StepContext) -> Iterable[Check]:
        """Preconditions on the site, evaluated just before the step (read only)."""
        return ()

    def run(self, ctx: StepContext) -> None:
        raise NotImplementedError


@dataclass
class StepView:
    """A playbook step as procedure validators see it (arguments unrendered)."""

    index: int
    id: str
    action: str
    args: dict[str, Any] = field(default_factory=dict)
