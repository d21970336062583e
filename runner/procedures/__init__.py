"""The procedures the runner knows. Each package exposes one `PROCEDURE`.

Adding a procedure = one package under runner/procedures/ and one line in
`_MODULES`; the core never imports a procedure's internals.
"""

from __future__ import annotations

import importlib
import os
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
    return tuple(importlib.import_module(name).PROCEDURE for name in _module_names())


@cache
def action_registry() -> dict[str, type[Action]]:
    registry: dict[str, type[Action]] = {}
    for procedure in procedures():
        for action in procedure.actions:
            registry[action.name] = action
    return registry
