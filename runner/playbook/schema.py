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
#: Every schema's `$id` is this base plus its path under schemas/ (the actions'
#: under actions/); `.invalid` is reserved, so no one mistakes it for a URL to fetch.
ID_BASE = "https://recover.invalid/schemas/"
BUNDLE_ID = ID_BASE + BUNDLE_NAME


@cache
def core_schema() -> dict[str, Any]:
    """The shipped core schema (read once: it never changes within a process)."""
    data: dict[str, Any] = json.loads(
        (schema_folder() / "playbook.schema.json").read_text(encoding="utf-8")
    )
    return data


def bundle(registry: Registry) -> dict[str, Any]:
    schema = copy.deepcopy(core_schema())
    schema["$id"] = BUNDLE_ID
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


#: What `recover validate` takes for an expression: any text with `{{` or `{%`
#: (it renders the text before checking the value).
_EXPRESSION = {
    "type": "string",
    "pattern": "\\{[{%]",
    "title": "a {{ expression }}",
    "description": "a {{ expression }}",
}
_VALUE_KEYS = ("properties", "patternProperties")
_BRANCH_KEYS = ("anyOf", "oneOf", "allOf")


def _templatable(schema: dict[str, Any]) -> dict[str, Any]:
    """Let editors accept `"{{ param }}"` wherever an argument value goes, at
    any depth (a list item, a mapping value inside a list, a form of an anyOf).

    `recover validate` checks arguments after rendering, with the real types;
    this only keeps editors from flagging expressions as type errors.
    """
    out = dict(schema)
    for key in _VALUE_KEYS:
        if isinstance(out.get(key), dict):
            out[key] = {name: _value(sub) for name, sub in out[key].items()}
    for key in ("additionalProperties", "items"):
        if isinstance(out.get(key), dict):
            out[key] = _value(out[key])
    if isinstance(out.get("prefixItems"), list):
        out["prefixItems"] = [_value(sub) for sub in out["prefixItems"]]
    for key in _BRANCH_KEYS:
        if isinstance(out.get(key), list):
            out[key] = [_templatable(sub) if isinstance(sub, dict) else sub for sub in out[key]]
    return out


def _value(schema: Any) -> Any:
    """A value position: the schema's own forms, or an expression."""
    if not isinstance(schema, dict):
        return schema
    return {"anyOf": [_templatable(schema), _EXPRESSION]}


def bundle_text(registry: Registry) -> str:
    return json.dumps(bundle(registry), indent=2, sort_keys=False) + "\n"
