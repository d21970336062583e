"""Fixtures: small generated repositories, and the CLI run the way an operator runs it."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from runner.cli import cli
from runner.procedures.pool_containers.catalog import TABLES
from runner.procedures.pool_containers.world.generator import NOW, Options, generate
from tests.helpers import (
    PLAYBOOKS_DIR,
    catalog_site_files,
    catalog_site_snapshot,
    process_env,
    run_process,
    step_outputs,
)
from tests.helpers import catalog_dump as dump_tables

PLAYBOOK = PLAYBOOKS_DIR / "pool-container-fix.yaml"
CLOCK = NOW.isoformat()


@dataclass
class Site:
    root: Path
    scenario: dict[str, Any]

    @property
    def since(self) -> str:
        return str(self.scenario["window"])

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.root / "catalog.sqlite")

    def query(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        conn = self.db()
        try:
            return conn.execute(sql, args).fetchall()
        finally:
            conn.close()


@pytest.fixture(autouse=True)
def _clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECOVER_NOW", CLOCK)
    monkeypatch.delenv("RECOVER_CRASH_AT", raising=False)


@pytest.fixture(scope="session")
def template_site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    """One generated repository per test session; tests copy it."""
    root = tmp_path_factory.mktemp("pools-template") / "site"
    return Site(root, generate(root, Options(seed=11, elements=48)))


@pytest.fixture
def site(template_site: Site, tmp_path: Path) -> Site:
    import shutil

    root = tmp_path / "site"
    shutil.copytree(template_site.root, root)
    return Site(root, template_site.scenario)


@pytest.fixture
def make_site(tmp_path: Path) -> Callable[..., Site]:
    def make(name: str = "site", **options: Any) -> Site:
        root = tmp_path / name
        return Site(root, generate(root, Options(**options)))

    return make


def recover(*args: str | Path) -> Result:
    """`recover ARGS` through click's test runner."""
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def run_playbook(
    site: Site, *extra: str, playbook: Path = PLAYBOOK, since: str | None = None
) -> Result:
    return recover(
        "run",
        playbook,
        "--site",
        site.root,
        "--yes",
        "--param",
        f"since={since or site.since}",
        *extra,
    )


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
