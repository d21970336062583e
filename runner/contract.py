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


@dataclass(frozen=True)
class ActionInfo:
    """What validation, plans and `recover actions` know of an action without
    importing its code (which brings its media and catalog modules: most of a
    start-up). Built from the class, or read from its procedure's facts file."""

    name: str
    summary: str
    destructive: bool = False
    outputs: Mapping[str, Output] | None = None
    loss_units: tuple[str, ...] = ()
    #: the inline argument schema, when the action has one (args_schema)
    args_schema: dict[str, Any] | None = None

    @classmethod
    def of(cls, action: type[Action]) -> ActionInfo:
        outputs = None if action.outputs is None else dict(action.outputs)
        return cls(
            action.name,
            action.summary,
            action.destructive,
            outputs,
            tuple(action.loss_units),
            action.args_schema,
        )

    def to_json(self) -> dict[str, Any]:
        outputs = self.outputs
        return {
            "name": self.name,
            "summary": self.summary,
            "destructive": self.destructive,
            "outputs": None
            if outputs is None
            else {k: {"type": o.type, "description": o.description} for k, o in outputs.items()},
            "loss_units": list(self.loss_units),
            "args_schema": self.args_schema,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ActionInfo:
        outputs = data.get("outputs")
        return cls(
            str(data["name"]),
            str(data["summary"]),
            bool(data.get("destructive", False)),
            None
            if outputs is None
            else {k: Output(str(o["type"]), str(o["description"])) for k, o in outputs.items()},
            tuple(map(str, data.get("loss_units", ()))),
            data.get("args_schema"),
        )


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
    #: the action classes, or "module:attribute" naming a tuple of them: a
    #: reference is imported only when a step is planned or run, if the
    #: procedure ships a facts file (`<name>.actions.json` in its schema
    #: folder, written by `python -m runner.procedures.facts`) that tells
    #: validation what it needs; without one it is imported at once
    actions: tuple[type[Action], ...] | str
    assets: ProcedureAssets = field(default_factory=ProcedureAssets)
    #: the `recover world NAME` command, or "module:attribute" naming it: a
    #: reference is imported only when the command is asked for, so commands
    #: that never generate a site (validate, plan, run) do not load generators
    world: click.Command | str | None = None
    #: builds demo site(s) under the given directory and says what to run on them
    demo: Callable[[Path], list[DemoCase]] | None = None
    #: static, cross-step checks of a playbook (e.g. mode order), no site needed
    validate_steps: Callable[[list[StepView]], list[Finding]] | None = None

    def action_classes(self) -> tuple[type[Action], ...]:
        """The action classes, imported now if the procedure named them by reference."""
        if not isinstance(self.actions, str):
            return self.actions
        module, _, attribute = self.actions.partition(":")
        classes = getattr(importlib.import_module(module), attribute or "ACTIONS")
        if not isinstance(classes, tuple) or not all(
            isinstance(c, type) and issubclass(c, Action) for c in classes
        ):
            raise ProcedureLoadError(f"{self.actions} is not a tuple of Action classes")
        return classes

    def facts_file(self) -> Traversable | None:
        """Where the procedure's action facts are, if it ships them."""
        if self.assets.schemas is None:
            return None
        return self.assets.schemas / f"{self.name}.actions.json"

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

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        super().__init__(message)
        self.fix = fix or "reinstall the package that provides the procedure"


class Registry:
    """The procedures one invocation works with, and their actions' schemas.

    Built once per invocation and passed in (to validation, planning, running),
    so a test builds its own instead of clearing module-level caches. Every
    action's argument schema is read when the registry is built: an action
    without one is a load error naming it, never "any arguments accepted".
    What validation needs of each action (`actions`, `info`) comes from the
    procedure's facts file when it ships one; the classes (`action`) are
    imported on first use, and checked against those facts then.
    """

    def __init__(
        self,
        procedures: Sequence[Procedure] = (),
        *,
        later: Callable[[Registry], None] | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self._procedures: tuple[Procedure, ...] = ()
        self._warnings: list[str] = []
        self._infos: dict[str, ActionInfo] = {}
        self._classes: dict[str, type[Action]] = {}
        self._owner: dict[str, Procedure] = {}
        self._schemas: dict[str, dict[str, Any]] = {}
        self._warn = warn
        for procedure in procedures:
            self.add(procedure)
        #: adds the procedures that are costly to find (other packages' entry
        #: points): run on the first question the procedures given cannot answer
        self._later = later

    def complete(self) -> Registry:
        """Load the deferred procedures now (once)."""
        later, self._later = self._later, None
        if later is not None:
            later(self)
        return self

    @property
    def procedures(self) -> tuple[Procedure, ...]:
        return self.complete()._procedures

    @property
    def actions(self) -> dict[str, ActionInfo]:
        """Every action's facts, by name."""
        return self.complete()._infos

    @property
    def warnings(self) -> list[str]:
        """Why procedures that were found could not be loaded."""
        return self.complete()._warnings

    def warn(self, message: str) -> None:
        self._warnings.append(message)
        if self._warn is not None:
            self._warn(message)

    def add(self, procedure: Procedure) -> None:
        """Register a procedure whole, or not at all (ProcedureLoadError says why)."""
        if any(known.name == procedure.name for known in self._procedures):
            raise ProcedureLoadError(f"a procedure named {procedure.name!r} is already registered")
        infos = read_facts(procedure)
        classes: tuple[type[Action], ...] = ()
        if infos is None:
            classes = procedure.action_classes()
            infos = tuple(ActionInfo.of(action) for action in classes)
        schemas = {info.name: load_action_schema(procedure, info) for info in infos}
        self._procedures += (procedure,)
        self._schemas.update(schemas)
        for info in infos:
            self._infos[info.name] = info
            self._owner[info.name] = procedure
        self._classes.update((action.name, action) for action in classes)

    def __contains__(self, action: object) -> bool:
        return action in self._infos or action in self.actions

    def _known(self, name: str) -> str:
        if name not in self._infos:
            self.complete()
        return name

    def info(self, name: str) -> ActionInfo:
        return self._infos[self._known(name)]

    def action(self, name: str) -> type[Action]:
        """The action's class: its procedure's code is imported on first use."""
        known = self._classes.get(name)
        if known is None:
            self._import_actions(self._owner[self._known(name)])
            known = self._classes[name]
        return known

    def _import_actions(self, procedure: Procedure) -> None:
        """Import the classes behind a procedure's facts; facts that no longer say
        what the code does are a load error (validation would have checked a
        playbook against the wrong declarations)."""
        try:
            classes = procedure.action_classes()
        except ProcedureLoadError:
            raise
        except Exception as exc:  # any failure of the procedure's own code
            raise ProcedureLoadError(
                f"procedure {procedure.name!r}: cannot import its actions "
                f"{procedure.actions}: {type(exc).__name__}: {exc}"
            ) from exc
        found = {action.name: ActionInfo.of(action) for action in classes}
        told = {name: info for name, info in self._infos.items() if self._owner[name] is procedure}
        if found != told:
            differ = sorted(n for n in found.keys() | told.keys() if found.get(n) != told.get(n))
            raise ProcedureLoadError(
                f"procedure {procedure.name!r}: its facts file {procedure.facts_file()} does "
                f"not match its actions' code ({', '.join(differ)})",
                fix=FACTS_FIX,
            )
        self._classes.update((action.name, action) for action in classes)

    def procedure_of(self, action: str) -> Procedure:
        return self._owner[self._known(action)]

    def action_schema(self, name: str) -> dict[str, Any]:
        return self._schemas[self._known(name)]

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


FACTS_FIX = (
    "regenerate the facts file from the actions' code: `python -m runner.procedures.facts` "
    "(for a procedure of another package, its own facts command), or reinstall the package"
)


def read_facts(procedure: Procedure) -> tuple[ActionInfo, ...] | None:
    """The procedure's action facts, when its actions are named by reference and
    it ships a facts file; None when the classes must be imported to know them."""
    resource = procedure.facts_file()
    if not isinstance(procedure.actions, str) or resource is None or not resource.is_file():
        return None
    try:
        data = json.loads(resource.read_text(encoding="utf-8"))
        return tuple(ActionInfo.from_json(entry) for entry in data["actions"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ProcedureLoadError(
            f"procedure {procedure.name!r}: cannot read its facts file {resource}: {exc}",
            fix=FACTS_FIX,
        ) from exc


def load_action_schema(procedure: Procedure, action: ActionInfo) -> dict[str, Any]:
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
