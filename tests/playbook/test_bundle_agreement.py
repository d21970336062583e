"""The editor sees what validate sees: every playbook `recover validate` accepts
passes the editor bundle (jsonschema, as an editor runs it), and every
schema-level error validate reports in a bad playbook the bundle flags too."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from runner.contract import Registry
from runner.playbook.schema import BUNDLE_ID, ID_BASE, bundle, core_schema
from runner.playbook.validate import check_playbook
from runner.procedures import load_registry
from tests.helpers import PLAYBOOKS_DIR, PROJECT_ROOT, SCHEMAS_DIR

REGISTRY: Registry = load_registry({})
BUNDLE = Draft202012Validator(bundle(REGISTRY))
SCHEMA_LEVEL = {"R101", "R102", "R103", "R104", "R105", "R107"}


def _shipped() -> list[tuple[str, dict[str, Any]]]:
    return [(p.name, yaml.safe_load(p.read_text())) for p in sorted(PLAYBOOKS_DIR.glob("*.yaml"))]


def _docs_examples() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for page in sorted((PROJECT_ROOT / "docs").glob("*.md")):
        blocks = re.findall(r"```ya?ml\n(.*?)```", page.read_text(encoding="utf-8"), re.S)
        for n, block in enumerate(blocks):
            if re.search(r"^version:", block, re.M) and re.search(r"^steps:", block, re.M):
                found.append((f"{page.name}#{n}", yaml.safe_load(block)))
    return found


def _leaves(value: Any, path: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, (*path, index))
    yield path, value


_PARAM_TYPE = {bool: "boolean", int: "integer", float: "number", str: "string"}


def _param_type(value: Any) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return _PARAM_TYPE[type(value)]


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> None:
    for part in path[:-1]:
        doc = doc[part]
    doc[path[-1]] = value


#: literal argument values at depth, for the generator to turn into expressions
_LITERALS: list[tuple[str, dict[str, Any]]] = [
    (
        "archive.mark_affected_locations",
        {"volume": "VOL0009", "ranges": [{"begin": 90, "end": 150}, {"begin": 900}]},
    ),
    ("archive.recovery_attempt", {"volume": "VOL0009", "max_jobs": 5, "batches": 2}),
    ("archive.unload", {"carriers": ["C1", "C2"]}),
]


def _generated() -> list[tuple[str, dict[str, Any]]]:
    """Each shipped playbook and a few literal steps with one argument value,
    at every depth, replaced by an expression over a param holding that value."""
    bases = [(name, doc) for name, doc in _shipped()]
    extra = copy.deepcopy(bases[0][1])
    extra["steps"] += [
        {"id": f"lit{n}", "action": action, "args": args}
        for n, (action, args) in enumerate(_LITERALS)
    ]
    bases.append(("literals", extra))
    corpus = []
    for name, doc in bases:
        for index, step in enumerate(doc["steps"]):
            for path, value in _leaves(step.get("args", {}), ()):
                if not path or (isinstance(value, str) and "{{" in value):
                    continue
                variant = copy.deepcopy(doc)
                param = f"gen_{index}_{len(path)}"
                variant.setdefault("params", {})[param] = {
                    "type": _param_type(value),
                    "default": value,
                    "description": "generated",
                }
                _set(variant["steps"][index]["args"], path, f"{{{{ {param} }}}}")
                corpus.append((f"{name}:steps[{index}].args{list(path)}", variant))
        corpus.append((f"{name}, defaults inlined", _inlined(doc)))
    return corpus


def _inlined(doc: dict[str, Any]) -> dict[str, Any]:
    """The playbook with every argument that is just `{{ param }}` written as
    the param's default (the literal form validate accepts as well)."""
    variant = copy.deepcopy(doc)
    params = variant.get("params", {})
    for step in variant["steps"]:
        for path, value in list(_leaves(step.get("args", {}), ())):
            match = (
                re.fullmatch(r"\{\{ *([A-Za-z_]\w*) *\}\}", value)
                if isinstance(value, str)
                else None
            )
            if path and match and "default" in params.get(match.group(1), {}):
                _set(step["args"], path, copy.deepcopy(params[match.group(1)]["default"]))
    return variant


def _write(tmp_path: Path, doc: dict[str, Any]) -> Path:
    path = tmp_path / "pb.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def _bundle_errors(doc: dict[str, Any]) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in BUNDLE.iter_errors(doc)]


def test_every_playbook_validate_accepts_passes_the_bundle(tmp_path: Path) -> None:
    corpus = _shipped() + _docs_examples() + _generated()
    accepted = 0
    for name, doc in corpus:
        _, found = check_playbook(_write(tmp_path, doc), REGISTRY)
        if any(d.severity == "error" for d in found):
            continue
        accepted += 1
        assert _bundle_errors(doc) == [], name
    assert len(_docs_examples()) >= 1
    assert accepted >= 35  # the corpus really is mostly valid playbooks


def test_a_list_item_given_as_an_expression(tmp_path: Path) -> None:
    """The issue's example: `ranges: ["{{ first_range }}"]`."""
    doc = _shipped()[0][1]
    doc["params"]["first_range"] = {
        "type": "object",
        "default": {"begin": 90, "end": 150},
        "description": "d",
    }
    mark = next(s for s in doc["steps"] if s["action"] == "archive.mark_affected_locations")
    mark["args"]["ranges"] = ["{{ first_range }}"]
    _, found = check_playbook(_write(tmp_path, doc), REGISTRY)
    assert [d for d in found if d.severity == "error"] == []
    assert _bundle_errors(doc) == []


def _mutations() -> list[tuple[str, Any]]:
    def step(doc: dict[str, Any], action: str) -> dict[str, Any]:
        found: dict[str, Any] = next(s for s in doc["steps"] if s["action"] == action)
        return found

    return [
        ("unknown top-level key", lambda d: d.update(descripton="x")),
        ("version 2", lambda d: d.update(version=2)),
        ("unknown arg", lambda d: step(d, "archive.recovery_attempt")["args"].update(batchs=2)),
        ("wrong type", lambda d: step(d, "archive.recovery_attempt")["args"].update(max_jobs=[1])),
        ("batches 0", lambda d: step(d, "archive.recovery_attempt")["args"].update(batches=0)),
        (
            "ranges text",
            lambda d: step(d, "archive.mark_affected_locations")["args"].update(ranges="90-150"),
        ),
        ("allow_loss -1", lambda d: d["safety"]["allow_loss"].update(objects=-1)),
        ("empty args", lambda d: step(d, "archive.unload").update(args={})),
        ("missing arg", lambda d: step(d, "archive.scan_volume").update(args={})),
        ("param type int", lambda d: d["params"]["volume"].update(type="int")),
        ("step without id", lambda d: d["steps"][0].pop("id")),
        ("bad param name", lambda d: d["params"].update({"1bad": {"type": "string"}})),
    ]


@pytest.mark.parametrize(("label", "mutate"), _mutations(), ids=[m[0] for m in _mutations()])
def test_schema_level_errors_are_flagged_by_the_bundle_too(
    tmp_path: Path, label: str, mutate: Any
) -> None:
    doc = _shipped()[0][1]
    assert doc["name"] == "archive-volume-recovery"
    mutate(doc)
    _, found = check_playbook(_write(tmp_path, doc), REGISTRY)
    schema_level = [d for d in found if d.code in SCHEMA_LEVEL]
    assert schema_level, (label, found)
    assert _bundle_errors(doc), label


def test_one_id_scheme_for_every_schema() -> None:
    assert core_schema()["$id"] == ID_BASE + "playbook.schema.json"
    assert bundle(REGISTRY)["$id"] == BUNDLE_ID == ID_BASE + "playbook.bundle.schema.json"
    on_disk = json.loads((SCHEMAS_DIR / "playbook.bundle.schema.json").read_text())
    assert on_disk["$id"] == BUNDLE_ID
    for name in REGISTRY.actions:
        assert REGISTRY.action_schema(name)["$id"] == f"{ID_BASE}actions/{name}.schema.json"
