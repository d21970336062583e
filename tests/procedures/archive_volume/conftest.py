"""Fixtures: small generated archive sites, the CLI, and site snapshots."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from runner.cli import cli
from runner.procedures.archive_volume import catalog
from runner.procedures.archive_volume.world import Options, generate
from tests.helpers import PLAYBOOKS_DIR

PLAYBOOK = PLAYBOOKS_DIR / "archive-volume-recovery.yaml"
NOW = "2026-01-02T03:04:05+00:00"
TABLES = catalog.TABLES


@pytest.fixture(autouse=True)
def _pinned_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECOVER_NOW", NOW)
    monkeypatch.delenv("RECOVER_CRASH_AT", raising=False)


def make_site(root: Path, **options: Any) -> tuple[Path, dict[str, Any]]:
    scenario = generate(root, Options(**{"studies": 80, **options}))
    return root, scenario


@pytest.fixture
def site(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    return make_site(tmp_path / "site")


def run_cli(*args: str | os.PathLike[str]) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def run_playbook(site: Path, *extra: str, playbook: Path = PLAYBOOK) -> Result:
    return run_cli("run", playbook, "--site", site, "--yes", *extra)


def write_playbook(path: Path, steps: list[dict[str, Any]], allow_loss: Any = "unlimited") -> Path:
    """A minimal playbook (JSON is YAML) with the given steps."""
    path.write_text(
        "# yaml-language-server: $schema=../schemas/playbook.bundle.schema.json\n"
        + json.dumps(
            {
                "version": 1,
                "name": path.stem,
                "description": "test playbook",
                "site": {"root": ".", "catalog": "catalog.sqlite"},
                "safety": {"allow_loss": {"objects": allow_loss}},
                "steps": steps,
            }
        )
    )
    return path


def snapshot(root: Path) -> dict[str, str]:
    """Digest of every site file except the runner's own state."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts[0] == ".recover" or not path.is_file():
            continue
        out[str(rel)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def catalog_rows(root: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(root / "catalog.sqlite") as db:
        return {t: sorted(db.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in TABLES}


def query(root: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(root / "catalog.sqlite")
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def csv_rows(path: Path) -> Iterator[list[str]]:
    import csv

    with path.open(newline="") as handle:
        yield from csv.reader(handle)


SiteFactory = Callable[..., tuple[Path, dict[str, Any]]]
