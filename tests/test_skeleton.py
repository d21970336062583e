"""Every shipped procedure has the same skeleton, and keeps to the contract.

docs/adding_a_procedure.md describes the skeleton; this keeps the five
procedures (and the doc) honest.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from runner.contract import Action
from runner.procedures import SHIPPED

ROOT = Path(__file__).resolve().parent.parent
SKELETON = (
    "__init__.py",
    "actions/__init__.py",
    "actions/base.py",
    "media.py",
    "rules.py",
    "world/__init__.py",
    "world/generator.py",
    "world/scenario.py",
    "world/cli.py",
)
#: the one procedure without a SQLite catalog (a data file and its key file)
NO_CATALOG = {"runner.procedures.keyed_file"}


@pytest.mark.parametrize("module", SHIPPED)
def test_every_procedure_has_the_skeleton(module: str) -> None:
    package = ROOT / Path(*module.split("."))
    missing = [name for name in SKELETON if not (package / name).is_file()]
    assert missing == []
    assert (package / "catalog.py").is_file() == (module not in NO_CATALOG)


@pytest.mark.parametrize("module", SHIPPED)
def test_the_registration_points_into_the_skeleton(module: str) -> None:
    procedure = importlib.import_module(module).PROCEDURE
    assert procedure.action_classes() == importlib.import_module(f"{module}.actions").ACTIONS
    assert procedure.validate_steps is importlib.import_module(f"{module}.rules").validate_steps
    assert procedure.world_command() is importlib.import_module(f"{module}.world.cli").command
    world = importlib.import_module(f"{module}.world")
    assert {"Options", "generate"} <= set(vars(world))


@pytest.mark.parametrize("module", SHIPPED)
def test_one_base_action_and_no_action_redoes_the_check_flow(module: str) -> None:
    """Shared checks in the procedure's base action, then each action's own: the flow
    is Action.check's alone."""
    procedure = importlib.import_module(module).PROCEDURE
    base = importlib.import_module(f"{module}.actions.base")
    bases = [
        value
        for value in vars(base).values()
        if isinstance(value, type) and issubclass(value, Action) and value is not Action
    ]
    assert len(bases) == 1, bases
    for action in procedure.action_classes():
        assert issubclass(action, bases[0]), action
        assert "check" not in {
            name for klass in action.__mro__ if klass is not Action for name in vars(klass)
        }, f"{action.__name__} overrides check(); override own_checks() instead"
