"""An action's reference, generated from its schema and declarations.

One source for `recover actions NAME` and the argument tables in
docs/<procedure>.md (docs/make_action_docs.py writes them; tests/test_docs.py
keeps them in sync), so the two cannot drift from what validation checks.
"""

from __future__ import annotations

import json
from typing import Any

from runner.contract import Registry

BEGIN = "<!-- BEGIN GENERATED: action reference (python docs/make_action_docs.py) -->"
END = "<!-- END GENERATED: action reference -->"


def summary_lines(registry: Registry) -> list[str]:
    """One line per action: its name, [destructive], and its summary."""
    width = max((len(name) for name in registry.actions), default=0)
    lines = []
    for name in sorted(registry.actions):
        action = registry.info(name)
        flag = " [destructive]" if action.destructive else ""
        lines.append(f"{name.ljust(width)}  {_one_line(action.summary)}{flag}")
    return lines


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def arguments(registry: Registry, name: str) -> list[tuple[str, str, str, str, str]]:
    """(argument, type in words, required, default, description) per argument."""
    schema = registry.action_schema(name)
    required = set(schema.get("required", []))
    rows = []
    for arg, spec in schema.get("properties", {}).items():
        spec = spec if isinstance(spec, dict) else {}
        default = json.dumps(spec["default"]) if "default" in spec else ""
        rows.append(
            (
                arg,
                _type_text(spec),
                "yes" if arg in required else "no",
                default,
                _one_line(spec.get("description", "")),
            )
        )
    return rows


def _type_text(schema: dict[str, Any]) -> str:
    # Imported here: validate imports jsonschema lazily, and so does this.
    from runner.playbook.validate import describe_forms

    return describe_forms(schema)


def markdown(registry: Registry, name: str, level: int = 3) -> str:
    """The action's reference as Markdown: summary, flags, arguments, outputs."""
    action = registry.info(name)
    schema = registry.action_schema(name)
    lines = [f"{'#' * level} `{name}`", "", _one_line(action.summary) + "."]
    facts = [f"destructive: {'yes (runs need --yes)' if action.destructive else 'no'}"]
    facts.append(
        "loses data counted in: " + ", ".join(f"`{u}`" for u in action.loss_units)
        if action.loss_units
        else "reports no data loss"
    )
    lines += ["", "; ".join(facts) + "."]
    if schema.get("minProperties"):
        lines += ["", f"Give at least {schema['minProperties']} of the arguments."]
    rows = arguments(registry, name)
    lines += ["", "| argument | type | required | default | description |", "|---|---|---|---|---|"]
    lines += [f"| `{a}` | {_cell(t)} | {r} | {_cell(d)} | {_cell(x)} |" for a, t, r, d, x in rows]
    if not rows:
        lines.append("| (none) | | | | |")
    outputs = action.outputs or {}
    lines += ["", f"Outputs (`steps.<id>.outputs.<name>`), as `{name}` reports them:", ""]
    lines += ["| output | type | description |", "|---|---|---|"]
    lines += [f"| `{o}` | {spec.type} | {_cell(spec.description)} |" for o, spec in outputs.items()]
    if not outputs:
        lines.append("| (none declared) | | |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def text(registry: Registry, name: str) -> str:
    """The action's reference for the terminal."""
    action = registry.info(name)
    schema = registry.action_schema(name)
    out = [name, f"  {_one_line(action.summary)}"]
    out.append(f"  destructive: {'yes' if action.destructive else 'no'}")
    out.append(f"  loss units: {', '.join(action.loss_units) or 'none'}")
    if schema.get("minProperties"):
        out.append(f"  give at least {schema['minProperties']} of the arguments")
    out.append("arguments:")
    for arg, kind, required, default, description in arguments(registry, name):
        extra = ", required" if required == "yes" else (f", default {default}" if default else "")
        out.append(f"  {arg} ({kind}{extra})")
        if description:
            out.append(f"      {description}")
    out.append("outputs:")
    for output, spec in (action.outputs or {}).items():
        out.append(f"  {output} ({spec.type}): {spec.description}")
    if not action.outputs:
        out.append("  (none declared)")
    return "\n".join(out) + "\n"


def procedure_section(registry: Registry, procedure: str) -> str:
    """The generated block for docs/<procedure>.md: every action of the procedure."""
    names = sorted(n for n in registry.actions if registry.procedure_of(n).name == procedure)
    body = "\n".join(markdown(registry, name) for name in names)
    return (
        f"{BEGIN}\n## Action reference\n\nGenerated from the actions' schemas and "
        "declarations; `recover actions NAME` prints the same.\n\n"
        f"{body}{END}\n"
    )


def with_section(document: str, section: str) -> str:
    """The document with its generated block replaced (or appended)."""
    if BEGIN in document and END in document:
        head, rest = document.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        return head + section + ("\n" + tail if tail else "")
    return document.rstrip("\n") + "\n\n" + section
