"""Fixtures: small generated case-archive sites, and the CLI run the way an operator runs it."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from runner.cli import cli
from runner.procedures.case_archive.catalog import TABLES
from runner.procedures.case_archive.world.generator import NOW, Options, generate
from tests.helpers import (
    PLAYBOOKS_DIR,
    catalog_site_files,
    catalog_site_snapshot,
    process_env,
    run_process,
    step_outputs,
)
from tests.helpers import catalog_dump as dump_tables

PLAYBOOK = PLAYBOOKS_DIR / "case-archive.yaml"
CLOCK = NOW.isoformat()


@dataclass
class Site:
    root: Path
    scenario: dict[str, Any]

    def query(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(self.root / "catalog.sqlite")
        try:
            return conn.execute(sql, args).fetchall()
        finally:
            conn.close()

    def execute(self, sql: str, *args: object) -> None:
        conn = sqlite3.connect(self.root / "catalog.sqlite")
        try:
            with conn:
                conn.execute(sql, args)
        finally:
            conn.close()

    def setting(self, key: str, value: str) -> None:
        self.execute("UPDATE settings SET value = ? WHERE key = ?", value, key)


@pytest.fixture(autouse=True)
def _clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECOVER_NOW", CLOCK)
    monkeypatch.delenv("RECOVER_CRASH_AT", raising=False)


@pytest.fixture(scope="session")
def template_site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    """One generated site per test session; tests copy it."""
    root = tmp_path_factory.mktemp("cases-template") / "site"
    return Site(root, generate(root, Options(seed=11)))


@pytest.fixture
def site(template_site: Site, tmp_path: Path) -> Site:
    root = tmp_path / "site"
    shutil.copytree(template_site.root, root, symlinks=True)
    return Site(root, template_site.scenario)


def recover(*args: str | Path) -> Result:
    """`recover ARGS` through click's test runner."""
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def run_playbook(site: Site, *extra: str, playbook: Path = PLAYBOOK) -> Result:
    return recover("run", playbook, "--site", site.root, "--yes", *extra)


def playbook(
    directory: Path,
    steps: list[dict[str, Any]],
    *,
    allow_loss: dict[str, int] | None = None,
    name: str = "cases-test",
) -> Path:
    """A small ad-hoc playbook (one rule at a time)."""
    path = directory / f"{name}.yaml"
    doc = {
        "version": 1,
        "name": name,
        "site": {"catalog": "catalog.sqlite"},
        "safety": {"allow_loss": allow_loss or {}},
        "steps": steps,
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def run_steps(
    site: Site, tmp: Path, steps: list[dict[str, Any]], *extra: str, **kwargs: Any
) -> Result:
    return recover("run", playbook(tmp, steps, **kwargs), "--site", site.root, *extra)


def subprocess_run(
    args: list[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m runner ARGS` in a real process (needed to be SIGKILLed)."""
    return run_process(*args, env=process_env(RECOVER_NOW=CLOCK, **(env or {})), timeout=120)


tree = catalog_site_files
snapshot = catalog_site_snapshot


def catalog_dump(root: Path) -> dict[str, list[tuple[Any, ...]]]:
    return dump_tables(root / "catalog.sqlite", TABLES)


def outputs(site: Site, step: str) -> dict[str, Any]:
    return step_outputs(site.root, step)
