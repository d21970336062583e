"""Every action declares what `ctx.output` reports, and reports only that."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from runner.contract import Registry
from runner.procedures import load_registry
from tests.helpers import invoke

_TYPES: dict[str, tuple[type, ...]] = {
    "integer": (int,),
    "number": (int, float),
    "string": (str,),
    "boolean": (bool,),
    "list": (list,),
    "object": (dict,),
    "null": (type(None),),
}


def _fits(kind: str, value: Any) -> bool:
    for one in kind.split(" or "):
        if one in ("integer", "number") and isinstance(value, bool):
            continue
        if isinstance(value, _TYPES[one]):
            return True
    return False


def test_every_shipped_action_declares_its_outputs_with_known_types() -> None:
    registry = load_registry({})
    for name, action in registry.actions.items():
        assert action.outputs is not None, f"{name} declares no outputs"
        for output, spec in action.outputs.items():
            assert spec.description, f"{name}.{output} has no description"
            assert all(kind in _TYPES for kind in spec.type.split(" or ")), (name, output)


def _recorded(root: Path) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for journal in root.rglob(".recover/journal.sqlite"):
        conn = sqlite3.connect(journal)
        try:
            rows = conn.execute("SELECT action, outputs_json FROM recover_steps").fetchall()
        finally:
            conn.close()
        found += [(action, json.loads(outputs)) for action, outputs in rows]
    return found


@pytest.mark.slow
def test_the_demos_report_only_declared_outputs_of_the_declared_types(tmp_path: Path) -> None:
    registry: Registry = load_registry({})
    result = invoke("demo", tmp_path / "demo")
    assert result.exit_code == 0, result.output
    recorded = _recorded(tmp_path / "demo")
    assert len({a.split(".")[0] for a, _ in recorded}) == len(registry.procedures)
    for action, outputs in recorded:
        declared = registry.action(action).outputs
        assert declared is not None
        for key, value in outputs.items():
            assert key in declared, f"{action} reports {key!r}, which it does not declare"
            assert _fits(declared[key].type, value), (action, key, value, declared[key].type)
