"""Fixtures: small roll-forward sites from the world generator, and CLI helpers."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from runner.cli import cli
from runner.procedures.roll_forward.world import Options, generate
from tests.helpers import PLAYBOOKS_DIR

NOW = "2026-01-06T09:00:00+00:00"
PLAYBOOK = PLAYBOOKS_DIR / "roll-forward.yaml"
DEFAULT_DBS = ("sales", "stock", "staff")


@pytest.fixture
def make_site(tmp_path: Path) -> Callable[..., Path]:
    counter = iter(range(1000))

    def make(**options: Any) -> Path:
        options.setdefault("transactions", 150)
        options.setdefault("rows", 20)
        root = tmp_path / f"site{next(counter)}"
        generate(root, Options(**options))
        return root

    return make


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    """`recover ARGS` in-process, with the clock pinned."""
    return CliRunner().invoke(cli, list(args), env={"RECOVER_NOW": NOW, **(env or {})})


def run_playbook(site: Path, *params: str, playbook: Path = PLAYBOOK, yes: bool = True) -> Result:
    args = ["run", str(playbook), "--site", str(site)]
    for param in params:
        args += ["--param", param]
    return invoke(*args, *(["--yes"] if yes else []))


def scenario(site: Path) -> dict[str, Any]:
    return json.loads((site / "scenario.json").read_text())


def user_tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    conn = sqlite3.connect(path)
    try:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'rf_%' "
                "ORDER BY name"
            )
        ]
        return {n: conn.execute(f'SELECT * FROM "{n}" ORDER BY 1').fetchall() for n in names}
    finally:
        conn.close()


def assert_matches(
    site: Path, expected_dir: str = "expected", databases: tuple[str, ...] = DEFAULT_DBS
) -> None:
    for db in databases:
        got = user_tables(site / "databases" / f"{db}.sqlite")
        want = user_tables(site / expected_dir / f"{db}.sqlite")
        assert got.keys() == want.keys()
        for table in want:
            assert got[table] == want[table], f"{db}.{table} differs from {expected_dir}"


def outcome_counts(site: Path, db: str) -> dict[str, int]:
    """Per-reason transaction counts from the database's own rf_recovery table."""
    conn = sqlite3.connect(site / "databases" / f"{db}.sqlite")
    try:
        out = {
            "applied": 0,
            "failed": 0,
            "dependent": 0,
            "incomplete": 0,
            "stop_time": 0,
            "rolled_back": 0,
        }
        for status, reason, n in conn.execute(
            "SELECT status, reason, count(*) FROM rf_recovery GROUP BY 1, 2"
        ):
            out[status if status in ("applied", "rolled_back") else reason] += n
        return out
    finally:
        conn.close()


def flags(site: Path, db: str) -> dict[str, Any]:
    conn = sqlite3.connect(site / "databases" / f"{db}.sqlite")
    conn.row_factory = sqlite3.Row
    try:
        return dict(conn.execute("SELECT * FROM rf_flags").fetchone())
    finally:
        conn.close()


def snapshot(site: Path, under: str = "") -> dict[str, str]:
    """sha256 of every site file (outside .recover/), to prove nothing changed."""
    base = site / under if under else site
    return {
        str(p.relative_to(site)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(base.rglob("*"))
        if p.is_file() and ".recover" not in p.parts
    }


def write_playbook(path: Path, steps: str, name: str = "rf-test") -> Path:
    """A small playbook of our own actions (for cases the shipped one does not reach)."""
    path.write_text(
        f"version: 1\nname: {name}\nsafety:\n  allow_loss: {{transactions: unlimited}}\n"
        f"steps:\n{steps}"
    )
    return path


PREPARE = """
  - id: close
    action: rollforward.set_flags
    args: {databases: [sales, stock, staff], access: disabled, recovery: enabled}
  - id: restore
    action: rollforward.restore
    args: {databases: [sales, stock, staff]}
"""


def prepare(site: Path, tmp: Path) -> None:
    """Close and restore the default databases, ready for a recover-only playbook."""
    result = run_playbook(site, playbook=write_playbook(tmp / "prepare.yaml", PREPARE, "prep"))
    assert result.exit_code == 0, result.output


def recover_step(**args: Any) -> str:
    args.setdefault("databases", list(DEFAULT_DBS))
    args.setdefault("log_set", "dblog")
    return f"""
  - id: recover
    action: rollforward.recover
    args: {json.dumps(args)}
"""
