"""`recover schema`: a valid 2020-12 bundle that accepts the shipped playbooks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from tests.helpers import PLAYBOOKS_DIR, TOY_PLAYBOOK, assert_clean, invoke

pytestmark = pytest.mark.usefixtures("toy_env")


@pytest.fixture
def bundled() -> dict[str, Any]:
    result = invoke("schema")
    assert result.exit_code == 0, result.output
    schema: dict[str, Any] = json.loads(result.stdout)
    return schema


def test_the_bundle_is_a_valid_2020_12_schema(bundled: dict[str, Any]) -> None:
    assert bundled["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(bundled)
    for name, sub in bundled["$defs"].items():
        if name.startswith("action:"):
            Draft202012Validator.check_schema(sub)


def test_the_bundle_knows_every_action(bundled: dict[str, Any]) -> None:
    actions = bundled["$defs"]["step"]["properties"]["action"]["enum"]
    assert {"toy.mark", "toy.device", "toy.copy", "archive.recovery_attempt"} <= set(actions)
    assert actions == sorted(actions)


@pytest.mark.parametrize("path", sorted(PLAYBOOKS_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_the_bundle_accepts_every_shipped_playbook(bundled: dict[str, Any], path: Path) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    errors = list(Draft202012Validator(bundled).iter_errors(data))
    assert errors == [], [e.message for e in errors]


def test_the_bundle_accepts_expressions_for_typed_args(bundled: dict[str, Any]) -> None:
    data = yaml.safe_load(TOY_PLAYBOOK)
    assert data["steps"][1]["args"]["batch"] == "{{ batch }}"
    assert list(Draft202012Validator(bundled).iter_errors(data)) == []


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda d: d["steps"][0].update(action="toy.nope"), ["steps", 0, "action"]),
        (lambda d: d["steps"][1]["args"].update(batch="ten"), ["steps", 1, "args", "batch"]),
        (lambda d: d["steps"][1]["args"].update(batc=1), ["steps", 1, "args"]),
        (lambda d: d.update(stesp=[]), []),
        (lambda d: d.update(version=2), ["version"]),
    ],
)
def test_the_bundle_rejects_what_validate_rejects(
    bundled: dict[str, Any], change: Any, where: list[Any]
) -> None:
    data = yaml.safe_load(TOY_PLAYBOOK)
    change(data)
    errors = list(Draft202012Validator(bundled).iter_errors(data))
    assert errors
    assert any(list(e.absolute_path)[: len(where)] == where for e in errors)


def test_one_action_schema() -> None:
    result = invoke("schema", "--action", "toy.device")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["required"] == ["online"]


def test_an_unknown_action_schema_is_a_clean_error() -> None:
    result = invoke("schema", "--action", "toy.nope")
    assert result.exit_code == 1
    assert_clean(result)
    assert "unknown action 'toy.nope'" in result.stderr
    assert "fix: run `recover schema`" in result.stderr


def test_schema_output_writes_the_editor_bundle(tmp_path: Path) -> None:
    written = tmp_path / "playbook.bundle.schema.json"
    result = invoke("schema", "--output", str(written))
    assert result.exit_code == 0
    assert result.stdout.strip() == f"wrote {written}"
    assert written.read_text(encoding="utf-8") == invoke("schema").stdout
