"""Fixtures: sites from the world generator, the CLI through click's CliRunner."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from runner.cli import cli
from runner.procedures.keyed_file.world import Options, generate
from tests.helpers import PLAYBOOKS_DIR

PLAYBOOK = PLAYBOOKS_DIR / "keyed-file-repair.yaml"
NOW = "2026-01-02T03:04:05+00:00"
SiteMaker = Callable[..., tuple[Path, dict[str, Any]]]


@pytest.fixture(autouse=True)
def _pinned_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECOVER_NOW", NOW)
    monkeypatch.delenv("RECOVER_CRASH_AT", raising=False)


@pytest.fixture
def make_site(tmp_path: Path) -> SiteMaker:
    """make_site(name, records=..., damage=(...), ...) -> (site, scenario)."""

    def make(name: str = "site", **spec: Any) -> tuple[Path, dict[str, Any]]:
        site = tmp_path / name
        scenario = generate(site, Options(**spec))
        return site, scenario

    return make


def recover(*args: object) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def steps(site: Path) -> dict[str, dict[str, Any]]:
    """The newest run's steps by id, from `recover status --json`."""
    result = recover("status", "--site", site, "--json")
    assert result.exit_code == 0, result.output
    runs = json.loads(result.stdout)["runs"]
    return {s["step_id"]: s for s in runs[0]["steps"]}


def digest(site: Path, *, under: str = "") -> dict[str, str]:
    """sha256 of every file of the site except the runner's own state."""
    out = {}
    for path in sorted((site / under).rglob("*")):
        rel = path.relative_to(site).as_posix()
        if path.is_file() and not rel.startswith(".recover/"):
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out
