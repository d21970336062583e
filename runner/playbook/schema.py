"""The playbook JSON Schema: the core schema plus one schema per action.

`bundle()` inlines every action's argument schema and ties it to its action
name with if/then, so one document validates a whole playbook (and editors
can use it through the `yaml-language-server` comment).
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

from runner import SCHEMAS_DIR
from runner.procedures import action_registry

BUNDLE_NAME = "playbook.bundle.schema.json"


def _read(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        data: dict[str, Any] = json.load(handle)
    return data


@cache
def core_schema() -> dict[str, Any]:
    return _read(SCHEMAS_DIR / "playbook.schema.json")


@cache
def action_schema(name: str) -> dict[str, Any]:
    inline = action_registry()[name].args_schema
    if inline is not None:
        return inline
    path = SCHEMAS_DIR / "actions" / f"{name}.schema.json"
    if not path.exists():
        return {"type": "object"}
    return _read(path)


@cache
def bundle() -> dict[str, Any]:
    schema = copy.deepcopy(core_schema())
    names = sorted(action_registry())
    step = schema["$defs"]["step"]
    step["properties"]["action"] = {
        **step["properties"]["action"],
        "enum": names,
    }
    rules = []
    for name in names:
        sub = _templatable(
            {k: v for k, v in action_schema(name).items() if k not in ("$schema", "$id")}
        )
        key = "action:" + name
        schema["$defs"][key] = sub
        rules.append(
            {
                "if": {"properties": {"action": {"const": name}}, "required": ["action"]},
                "then": {"properties": {"args": {"$ref": f"#/$defs/{key}"}}},
            }
        )
    step["allOf"] = rules
    return schema


_EXPRESSION = {"type": "string", "pattern": "\\{\\{", "description": "a {{ expression }}"}


def _templatable(schema: dict[str, Any]) -> dict[str, Any]:
    """Let editors accept `"{{ param }}"` wherever an argument value goes.

    `recover validate` checks arguments after rendering, with the real types;
    this only keeps editors from flagging expressions as type errors.
    """
    out = dict(schema)
    if isinstance(out.get("properties"), dict):
        out["properties"] = {
            key: {"anyOf": [_templatable(sub), _EXPRESSION]} if isinstance(sub, dict) else sub
            for key, sub in out["properties"].items()
        }
    if isinstance(out.get("items"), dict):
        out["items"] = {"anyOf": [_templatable(out["items"]), _EXPRESSION]}
    return out


def bundle_text() -> str:
    return json.dumps(bundle(), indent=2, sort_keys=False) + "\n"
