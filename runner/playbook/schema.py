"""The playbook JSON Schema: the core schema plus one schema per action.

`bundle()` inlines every action's argument schema and ties it to its action
name with if/then, so one document validates a whole playbook (and editors
can use it through the `yaml-language-server` comment).
"""

from __future__ import annotations

import copy
import json
from functools import cache
from typing import Any

from runner.assets import schema_folder
from runner.contract import Registry

BUNDLE_NAME = "playbook.bundle.schema.json"


@cache
def core_schema() -> dict[str, Any]:
    """The shipped core schema (read once: it never changes within a process)."""
    data: dict[str, Any] = json.loads(
        (schema_folder() / "playbook.schema.json").read_text(encoding="utf-8")
    )
    return data


def bundle(registry: Registry) -> dict[str, Any]:
    schema = copy.deepcopy(core_schema())
    names = sorted(registry.actions)
    step = schema["$defs"]["step"]
    step["properties"]["action"] = {
        **step["properties"]["action"],
        "enum": names,
    }
    rules = []
    for name in names:
        sub = _templatable(
            {k: v for k, v in registry.action_schema(name).items() if k not in ("$schema", "$id")}
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


def bundle_text(registry: Registry) -> str:
    return json.dumps(bundle(registry), indent=2, sort_keys=False) + "\n"
