"""Docs stay honest: the CLI reference and the editor schema match the code."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from runner.playbook.schema import BUNDLE_NAME, bundle
from runner.procedures import load_registry
from tests.helpers import SCHEMAS_DIR

ROOT = Path(__file__).resolve().parent.parent


def _load_generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("make_cli_md", ROOT / "docs" / "make_cli_md.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_matches_help_texts() -> None:
    generated = _load_generator().render()
    assert (ROOT / "docs" / "cli.md").read_text(encoding="utf-8") == generated, (
        "docs/cli.md is out of date: run `python docs/make_cli_md.py`"
    )


def test_every_command_documented_with_an_example() -> None:
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    for name in ("validate", "plan", "run", "status", "world", "demo", "schema", "actions"):
        section = text.split(f"## `recover {name}`", 1)[1].split("\n## ", 1)[0]
        assert "Example" in section, f"recover {name} --help has no example"


def test_editor_schema_bundle_is_current() -> None:
    on_disk = json.loads((SCHEMAS_DIR / BUNDLE_NAME).read_text(encoding="utf-8"))
    assert on_disk == bundle(load_registry({})), (
        "run `recover schema --output schemas/playbook.bundle.schema.json` to refresh it"
    )


def test_every_shipped_playbook_points_editors_at_the_schema() -> None:
    for playbook in (ROOT / "playbooks").glob("*.yaml"):
        first = playbook.read_text(encoding="utf-8").splitlines()[0]
        assert first == f"# yaml-language-server: $schema=../schemas/{BUNDLE_NAME}", playbook


def _load_action_docs():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "make_action_docs", ROOT / "docs" / "make_action_docs.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_procedure_pages_carry_the_current_argument_tables() -> None:
    registry = load_registry({})
    pages = _load_action_docs().pages(registry)
    assert len(pages) == len(registry.procedures)
    for page, expected in pages.items():
        assert page.read_text(encoding="utf-8") == expected, (
            f"{page.name} is out of date: run `python docs/make_action_docs.py`"
        )
    for name in registry.actions:  # every action and every argument is in a table
        page = next(t for t in pages.values() if f"### `{name}`" in t)
        for argument in registry.action_schema(name).get("properties", {}):
            assert f"| `{argument}` |" in page.split(f"### `{name}`", 1)[1], (name, argument)
