"""The procedures the runner knows, gathered into one Registry.

Three sources feed it, in this order (datasette's plugin pattern):

1. the shipped procedures, `SHIPPED` below: adding one is a package under
   runner/procedures/ and one line here;
2. the `recover.procedures` entry-point group: another installed distribution
   registers `name = "its_package"` (a module with a `PROCEDURE`), and ships its
   schemas, templates and playbooks inside its own package;
3. RECOVER_EXTRA_PROCEDURES, comma-separated importable modules (site-specific
   procedures without packaging, and test doubles).

A procedure from 2 or 3 that cannot be loaded does not take the tool down: a
warning names it and the cause (for an action without an argument schema, the
action), and the run goes on without it. A shipped one that cannot be loaded
is a bug, and raises.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from importlib.metadata import entry_points

from runner.contract import Procedure, ProcedureLoadError, Registry, load_action_schema

ENTRY_POINT_GROUP = "recover.procedures"
EXTRA_ENV = "RECOVER_EXTRA_PROCEDURES"

SHIPPED: tuple[str, ...] = (
    "runner.procedures.archive_volume",
    "runner.procedures.case_archive",
    "runner.procedures.keyed_file",
    "runner.procedures.pool_containers",
    "runner.procedures.roll_forward",
)


def load_registry(environ: Mapping[str, str] | None = None) -> Registry:
    """Build the registry for one invocation (the CLI does this once)."""
    environ = os.environ if environ is None else environ
    found: list[Procedure] = [importlib.import_module(name).PROCEDURE for name in SHIPPED]
    warnings: list[str] = []
    sources: list[tuple[str, str]] = [
        (f"entry point {ep.name!r} ({ENTRY_POINT_GROUP})", ep.value)
        for ep in entry_points(group=ENTRY_POINT_GROUP)
    ]
    extra = environ.get(EXTRA_ENV, "")
    sources += [(EXTRA_ENV, name.strip()) for name in extra.split(",") if name.strip()]
    names = {procedure.name for procedure in found}
    for source, module in sources:
        procedure, problem = _load_foreign(module)
        if procedure is not None and procedure.name in names:
            problem = f"a procedure named {procedure.name!r} is already registered"
        if problem is not None:
            warnings.append(
                f"warning: {source}: cannot load {module!r} ({problem}); "
                "its actions are unavailable"
            )
            continue
        assert procedure is not None
        names.add(procedure.name)
        found.append(procedure)
    return Registry(found, warnings)


def _load_foreign(module: str) -> tuple[Procedure | None, str | None]:
    """A procedure from outside the runner, or why it cannot be used."""
    try:
        name, _, attr = module.partition(":")
        loaded = importlib.import_module(name)
        procedure = getattr(loaded, attr or "PROCEDURE")
    except Exception as exc:  # any failure of foreign code
        return None, f"{type(exc).__name__}: {exc}"
    if not isinstance(procedure, Procedure):
        return None, f"{module}.PROCEDURE is not a Procedure"
    try:
        for action in procedure.actions:
            load_action_schema(procedure, action)
    except ProcedureLoadError as exc:
        return None, str(exc)
    return procedure, None
