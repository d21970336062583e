"""The procedures the runner knows. Each package exposes one `PROCEDURE`.

Adding a procedure = one package under runner/procedures/ and one line in
`_MODULES`; the core never imports a procedure's internals.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import click

    from runner.engine.action import Action, Finding, StepView

_MODULES: tuple[str, ...] = (
    "runner.procedures.archive_volume",
    "runner.procedures.case_archive",
    "runner.procedures.keyed_file",
    "runner.procedures.pool_containers",
    "runner.procedures.roll_forward",
)


def _module_names() -> tuple[str, ...]:
    """Shipped procedures, plus extra ones named in RECOVER_EXTRA_PROCEDURES
    (comma-separated importable modules: site-specific procedures, test doubles)."""
    extra = os.environ.get("RECOVER_EXTRA_PROCEDURES", "")
    return _MODULES + tuple(name.strip() for name in extra.split(",") if name.strip())


@dataclass(frozen=True)
class DemoCase:
    """One demo: a generated site and the shipped playbook to run on it."""

    title: str
    playbook: Path
    site: Path
    params: dict[str, Any] = field(default_factory=dict)
    confirm: tuple[str, ...] = ()


@dataclass(frozen=True)
class Procedure:
    name: str  # action prefix and `recover world NAME`
    title: str
    actions: tuple[type[Action], ...]
    world: click.Command | None = None
    #: builds demo site(s) under the given directory and says what to run on them
    demo: Callable[[Path], list[DemoCase]] | None = None
    #: static, cross-step checks of a playbook (e.g. mode order), no site needed
    validate_steps: Callable[[list[StepView]], list[Finding]] | None = None


@cache
def procedures() -> tuple[Procedure, ...]:
    found: list[Procedure] = []
    for name in _module_names():
        if name in _MODULES:
            found.append(importlib.import_module(name).PROCEDURE)
            continue
        # An extra procedure that cannot be loaded must not take the whole
        # tool down (not even `recover --help`): say so and go on without it.
        try:
            procedure = importlib.import_module(name).PROCEDURE
        except Exception as exc:  # any failure of foreign code
            sys.stderr.write(
                f"warning: RECOVER_EXTRA_PROCEDURES: cannot load {name!r} "
                f"({type(exc).__name__}: {exc}); its actions are unavailable\n"
            )
            continue
        if not isinstance(procedure, Procedure):
            sys.stderr.write(
                f"warning: RECOVER_EXTRA_PROCEDURES: {name}.PROCEDURE is not a Procedure; ignored\n"
            )
            continue
        found.append(procedure)
    return tuple(found)


@cache
def action_registry() -> dict[str, type[Action]]:
    registry: dict[str, type[Action]] = {}
    for procedure in procedures():
        for action in procedure.actions:
            registry[action.name] = action
    return registry
