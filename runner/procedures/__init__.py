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
from collections.abc import Callable, Mapping

from runner.contract import Procedure, ProcedureLoadError, Registry

ENTRY_POINT_GROUP = "recover.procedures"
EXTRA_ENV = "RECOVER_EXTRA_PROCEDURES"

SHIPPED: tuple[str, ...] = (
    "runner.procedures.archive_volume",
    "runner.procedures.case_archive",
    "runner.procedures.keyed_file",
    "runner.procedures.pool_containers",
    "runner.procedures.roll_forward",
)


def load_registry(
    environ: Mapping[str, str] | None = None, warn: Callable[[str], None] | None = None
) -> Registry:
    """Build the registry for one invocation (the CLI does this once).

    The shipped procedures are registered now; the others (entry points and
    RECOVER_EXTRA_PROCEDURES) when a question needs them: finding entry points
    costs a tenth of `recover validate`'s start-up, and a playbook of shipped
    actions never asks. `warn` hears each one that cannot be loaded, when it is.
    """
    environ = os.environ if environ is None else environ
    extra = environ.get(EXTRA_ENV, "")

    def add_others(registry: Registry) -> None:
        from importlib.metadata import entry_points  # the costly part

        sources: list[tuple[str, str]] = [
            (f"entry point {ep.name!r} ({ENTRY_POINT_GROUP})", ep.value)
            for ep in entry_points(group=ENTRY_POINT_GROUP)
        ]
        sources += [(EXTRA_ENV, name.strip()) for name in extra.split(",") if name.strip()]
        for source, module in sources:
            try:
                registry.add(_load_foreign(module))
            except ProcedureLoadError as exc:
                registry.warn(
                    f"warning: {source}: cannot load {module!r} ({exc}); "
                    "its actions are unavailable"
                )

    shipped = [importlib.import_module(name).PROCEDURE for name in SHIPPED]
    return Registry(shipped, later=add_others, warn=warn)


def _load_foreign(module: str) -> Procedure:
    """A procedure from outside the runner (`module` or `module:attribute`)."""
    try:
        name, _, attr = module.partition(":")
        procedure = getattr(importlib.import_module(name), attr or "PROCEDURE")
    except Exception as exc:  # any failure of foreign code
        raise ProcedureLoadError(f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(procedure, Procedure):
        raise ProcedureLoadError(f"{module}.PROCEDURE is not a Procedure")
    return procedure
