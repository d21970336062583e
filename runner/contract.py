"""The procedure contract: everything a procedure implements or receives.

This module sits at the bottom of the tree: the engine, the playbook layer and
every procedure import it, and it imports none of them (the two names under
TYPE_CHECKING are types only). A procedure is a `Procedure` value: its
actions, its world generator, its demo, its static rules and where its assets
(action schemas, report templates, playbooks) are. A `Registry` is the set of
procedures one invocation works with; it is built once (runner.procedures.
load_registry) and passed to whatever needs it.

An action is a class with a dotted `name` (`archive.mark_affected_locations`),
a JSON Schema for its arguments (`<name>.schema.json` in its procedure's
schema folder, or inline as `args_schema`), and two methods:

- `check(ctx)` yields the preconditions it needs on the live site, each as a
  `Check` (plan reports every failed one; run refuses the step). The flow is
  the same for every action: the procedure's `shared_checks` first, then the
  action's `own_checks`, which run only when the shared ones hold;
- `preflight(ctx)` yields what the step needs that no earlier step provides
  (its tables, its media, its backups): checked for every pending step before
  a run's first step changes anything, so a run that would fail on its
  inputs changes nothing;
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

import importlib
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

if TYPE_CHECKING:
    import click

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
    #: failing is a safety gate's refusal (exit 3: a confirmation is missing), not
    #: a failed precondition (exit 1); used by preflight checks
    refusal: bool = False


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


def catalog_shape_checks(
    db: sqlite3.Connection, ddl: str, *, what: str, fix: str, alias: str = "catalog"
) -> list[Check]:
    """Whether the attached catalog has every table and column `ddl` creates, and
    holds values of the declared types (an INTEGER column only integers, a
    TEXT column only text; NULL aside): what a step's SQL and Python rely on.

    A failed check names the table (and the first bad row) and says `fix`.
    Each catalog is scanned once per content (the result is kept by file,
    size and modification time), so the steps of one run share one scan.
    """
    reference = sqlite3.connect(":memory:")
    try:
        reference.executescript(ddl)
        wanted = {
            table: [
                (col[1], str(col[2]).upper())
                for col in reference.execute("SELECT * FROM pragma_table_info(?)", (table,))
            ]
            for (table,) in reference.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY rowid"
            )
        }
    finally:
        reference.close()
    key = _catalog_key(db, alias, ddl)
    if key is not None and key in _SHAPES:
        return _SHAPES[key]
    have = {
        row[0] for row in db.execute(f"SELECT name FROM {alias}.sqlite_master WHERE type = 'table'")
    }
    missing = [t for t in wanted if t not in have]
    checks = [
        Check(
            f"{what} has its tables",
            not missing,
            f"missing tables: {', '.join(missing)}" if missing else "",
            fix,
        )
    ]
    if not missing:
        checks += _column_checks(db, alias, wanted, what, fix)
    if key is not None:
        _SHAPES[key] = checks
    return checks


_SHAPES: dict[tuple[str, int, int, str], list[Check]] = {}

#: the storage classes a declared type admits (SQLite's affinity rules)
_ADMITS = (
    ("INT", ("integer",)),
    ("CHAR", ("text",)),
    ("CLOB", ("text",)),
    ("TEXT", ("text",)),
    ("REAL", ("real", "integer")),
    ("FLOA", ("real", "integer")),
    ("DOUB", ("real", "integer")),
)


def _admitted(declared: str) -> tuple[str, ...] | None:
    for marker, kinds in _ADMITS:
        if marker in declared:
            return kinds
    return None  # BLOB, NUMERIC or no type: anything goes


def _catalog_key(db: sqlite3.Connection, alias: str, ddl: str) -> tuple[str, int, int, str] | None:
    for _seq, name, file in db.execute("PRAGMA database_list"):
        if name == alias and file:
            try:
                info = Path(file).stat()
            except OSError:
                return None
            return (file, info.st_size, info.st_mtime_ns, ddl)
    return None


def _column_checks(
    db: sqlite3.Connection,
    alias: str,
    wanted: dict[str, list[tuple[str, str]]],
    what: str,
    fix: str,
) -> list[Check]:
    checks = []
    for table, columns in wanted.items():
        present = [row[1] for row in db.execute(f'PRAGMA {alias}.table_info("{table}")')]
        absent = [name for name, _type in columns if name not in present]
        if absent:
            checks.append(
                Check(
                    f"{what} table {table} has its columns",
                    False,
                    f"table {table} lacks column(s) {', '.join(absent)}",
                    fix,
                )
            )
            continue
        typed = [(name, kinds) for name, kind in columns if (kinds := _admitted(kind))]
        if not typed:
            continue
        # typeof(x) <> 'a' AND typeof(x) <> 'b' rather than NOT IN ('a', 'b'): the
        # same test, but a right value stops at its first comparison, and the
        # whole scan takes about 40% less time.
        condition = " OR ".join(
            "(" + " AND ".join(f"typeof(\"{name}\") <> '{kind}'" for kind in (*kinds, "null")) + ")"
            for name, kinds in typed
        )
        try:
            row = db.execute(
                f'SELECT rowid, * FROM {alias}."{table}" WHERE {condition} LIMIT 1'
            ).fetchone()
        except sqlite3.OperationalError:  # a WITHOUT ROWID table
            row = db.execute(
                f'SELECT NULL, * FROM {alias}."{table}" WHERE {condition} LIMIT 1'
            ).fetchone()
        if row is None:
            continue
        values = dict(zip(present, row[1:], strict=False))
        bad = next(
            (name, kinds)
            for name, kinds in typed
            if _storage_class(values.get(name)) not in (*kinds, "null")
        )
        checks.append(
            Check(
                f"{what} table {table} holds values of the right types",
                False,
                f"table {table}, row {row[0]}: column {bad[0]} holds "
                f"{_storage_class(values.get(bad[0]))} {_shown(values.get(bad[0]))}, "
                f"expected {' or '.join(bad[1])}",
                f"correct row {row[0]} of table {table} (column {bad[0]}), "
                "or restore the catalog from a backup",
            )
        )
    return checks


def _storage_class(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool | int):
        return "integer"
    if isinstance(value, float):
        return "real"
    if isinstance(value, bytes):
        return "blob"
    return "text"


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


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
        """Iterate while showing progress (`label`: done/total, rate, ETA) for long steps.

        Cheap per item (the engine looks at the clock every few thousand fast
        items, every item of a slow loop), so it belongs on the loops where the
        time goes, even ones of a few slow chunks.
        """
        ...

    def advance(self, label: str, done: int, total: int | None = None) -> None:
        """Progress of a phase measured in its own unit (bytes of log read, say).

        Shown like `progress`; inside a `progress` loop of the same label it
        replaces that loop's item count in what is shown. Cheap: call it per chunk.
        """

    def confirmed(self, key: str) -> bool:
        """Whether the playbook's safety.confirm or `--confirm KEY` grants `key`."""
        ...


@dataclass(frozen=True)
class Output:
    """One value an action reports with `ctx.output`, for `steps.<id>.outputs.<name>`.

    `type` is a JSON type name ("integer", "string", "list", ...), or two
    joined with " or " ("string or null"); validation checks references and,
    where an argument's type is known, that the two agree.
    """

    type: str
    description: str


class Action:
    """Base class of every playbook action. Subclasses set the class attributes."""

    name: ClassVar[str]
    summary: ClassVar[str]
    #: Can this action lose data? Then runs need --yes or an interactive yes.
    destructive: ClassVar[bool] = False
    #: The args schema inline; most actions leave this None and keep theirs in
    #: their procedure's schema folder as <name>.schema.json instead.
    args_schema: ClassVar[dict[str, Any] | None] = None
    #: What `ctx.output` reports, by name. None: not declared (references to the
    #: step's outputs are then not checked by `recover validate`).
    outputs: ClassVar[Mapping[str, Output] | None] = None
    #: The units `ctx.lost` may count (checked against `safety.allow_loss`).
    loss_units: ClassVar[tuple[str, ...]] = ()

    def __init__(self, args: Mapping[str, Any]) -> None:
        self.args: dict[str, Any] = dict(args)

    def databases(self, site: Site) -> dict[str, str]:
        """SQLite files to attach, alias -> site-relative path. Default: none."""
        return {}

    def check(self, ctx: StepContext) -> Iterable[Check]:
        """Preconditions on the site, evaluated just before the step (read only).

        The procedure's shared checks, then the action's own: an action's own
        checks may rely on what the shared ones established (the catalog has
        its tables, the volume exists), so they run only when those hold.
        """
        shared = list(self.shared_checks(ctx))
        if all(check.ok for check in shared):
            return [*shared, *self.own_checks(ctx)]
        return shared

    def preflight(self, ctx: StepContext) -> Iterable[Check]:
        """What this step needs that no earlier step provides, checked before a
        run's first step changes anything (and reported by plan): tables and
        columns, media present and of the right kind, backups, logs.

        Only what earlier steps of the playbook cannot change belongs here (a
        volume's online state, a crash flag, a file another step writes do
        not). `self.args` holds what the params tell: arguments that depend on
        earlier steps' outputs are missing. The engine has already checked
        the arguments, the site paths and that each catalog is a whole,
        readable SQLite file (runner.engine.preflight). Default: nothing more.
        """
        return ()

    def shared_checks(self, ctx: StepContext) -> Iterable[Check]:
        """What every action of the procedure needs; its base action overrides this."""
        return ()

    def own_checks(self, ctx: StepContext) -> Iterable[Check]:
        """What this action alone needs."""
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


# -- procedures ------------------------------------------------------------------


@dataclass(frozen=True)
class DemoCase:
    """One demo: a generated site and the shipped playbook to run on it."""

    title: str
    playbook: Path
    site: Path
    params: dict[str, Any] = field(default_factory=dict)
    confirm: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProcedureAssets:
    """Where a procedure's files are: action schemas (`<action>.schema.json`),
    report templates (named relative to `templates`, e.g. `toy/items.txt.j2`) and
    ready playbooks. Found through importlib.resources, so they ship inside the
    package that owns them, in a wheel as in a source tree."""

    schemas: Traversable | None = None
    templates: Traversable | None = None
    playbooks: Traversable | None = None

    @classmethod
    def of_package(cls, package: str) -> ProcedureAssets:
        """The layout of a procedure from another distribution: `schemas/`,
        `templates/` and `playbooks/` folders inside its own package."""
        root = files(package)
        return cls(root / "schemas", root / "templates", root / "playbooks")

    def playbook(self, name: str) -> Path:
        """A shipped playbook as a file path (the loader reads files)."""
        if self.playbooks is None:
            raise LookupError(f"no playbooks folder for {name}")
        return as_path(self.playbooks / name)


def as_path(resource: Traversable) -> Path:
    """A package resource as a real path. Packages are installed unpacked (pip
    never installs a zipped wheel), so this is the file itself, not a copy."""
    if isinstance(resource, Path):
        return resource
    raise LookupError(f"{resource} is not a file on disk; install the package unzipped")


@dataclass(frozen=True)
class Procedure:
    name: str  # action prefix and `recover world NAME`
    title: str
    actions: tuple[type[Action], ...]
    assets: ProcedureAssets = field(default_factory=ProcedureAssets)
    #: the `recover world NAME` command, or "module:attribute" naming it: a
    #: reference is imported only when the command is asked for, so commands
    #: that never generate a site (validate, plan, run) do not load generators
    world: click.Command | str | None = None
    #: builds demo site(s) under the given directory and says what to run on them
    demo: Callable[[Path], list[DemoCase]] | None = None
    #: static, cross-step checks of a playbook (e.g. mode order), no site needed
    validate_steps: Callable[[list[StepView]], list[Finding]] | None = None

    def world_command(self) -> click.Command | None:
        """The world command, imported now if the procedure named it by reference."""
        if not isinstance(self.world, str):
            return self.world
        import click  # at run time only here: the contract module stays light

        module, _, attribute = self.world.partition(":")
        command = getattr(importlib.import_module(module), attribute or "command")
        if not isinstance(command, click.Command):
            raise ProcedureLoadError(f"{self.world} is not a click command")
        return command


class ProcedureLoadError(Exception):
    """A procedure cannot be used as shipped (a missing argument schema, say)."""


class Registry:
    """The procedures one invocation works with, and their actions' schemas.

    Built once per invocation and passed in (to validation, planning, running),
    so a test builds its own instead of clearing module-level caches. Every
    action's argument schema is read when the registry is built: an action
    without one is a load error naming it, never "any arguments accepted".
    """

    def __init__(self, procedures: Sequence[Procedure] = ()) -> None:
        self.procedures: tuple[Procedure, ...] = ()
        self.warnings: list[str] = []
        self.actions: dict[str, type[Action]] = {}
        self._owner: dict[str, Procedure] = {}
        self._schemas: dict[str, dict[str, Any]] = {}
        for procedure in procedures:
            self.add(procedure)

    def add(self, procedure: Procedure) -> None:
        """Register a procedure whole, or not at all (ProcedureLoadError says why)."""
        if any(known.name == procedure.name for known in self.procedures):
            raise ProcedureLoadError(f"a procedure named {procedure.name!r} is already registered")
        schemas = {
            action.name: load_action_schema(procedure, action) for action in procedure.actions
        }
        self.procedures += (procedure,)
        self._schemas.update(schemas)
        for action in procedure.actions:
            self.actions[action.name] = action
            self._owner[action.name] = procedure

    def __contains__(self, action: object) -> bool:
        return action in self.actions

    def action(self, name: str) -> type[Action]:
        return self.actions[name]

    def procedure_of(self, action: str) -> Procedure:
        return self._owner[action]

    def action_schema(self, name: str) -> dict[str, Any]:
        return self._schemas[name]

    def template_folders(self) -> list[Path]:
        """Every procedure's template folder, each once, in registry order."""
        folders: list[Path] = []
        for procedure in self.procedures:
            if procedure.assets.templates is None:
                continue
            folder = as_path(procedure.assets.templates)
            if folder not in folders:
                folders.append(folder)
        return folders


def load_action_schema(procedure: Procedure, action: type[Action]) -> dict[str, Any]:
    """An action's argument schema: inline, or `<name>.schema.json` in its
    procedure's schema folder. Missing or unreadable is a ProcedureLoadError."""
    if action.args_schema is not None:
        return action.args_schema
    folder = procedure.assets.schemas
    if folder is None:
        raise ProcedureLoadError(
            f"action {action.name!r} has no argument schema: procedure "
            f"{procedure.name!r} names no schema folder and the action sets no args_schema"
        )
    resource = folder / f"{action.name}.schema.json"
    try:
        data = json.loads(resource.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProcedureLoadError(
            f"action {action.name!r} has no argument schema: {resource} does not exist"
        ) from None
    except (OSError, ValueError) as exc:
        raise ProcedureLoadError(
            f"action {action.name!r}: cannot read its argument schema {resource}: {exc}"
        ) from exc
    if not isinstance(data, dict):
        raise ProcedureLoadError(f"action {action.name!r}: {resource} is not a JSON object")
    return data


def declare_outputs(**declared: Output) -> Mapping[str, Output]:
    """An action's `outputs`, read-only: one declaration serves every step."""
    return MappingProxyType(declared)
