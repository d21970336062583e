"""Helpers for the core tests: the CLI in-process and as a real process, byte-exact
site snapshots, journal/status readers, and positions of text in a playbook."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner, Result

from runner.assets import playbook_folder, schema_folder, template_folder
from runner.cli import cli
from runner.contract import as_path

ROOT = Path(__file__).resolve().parent.parent
NOW = "2026-01-02T03:04:05+00:00"
NOW_SUFFIX = "20260102_030405"  # NOW as a report's never-overwrite suffix
TOY_MODULE = "tests.toyproc"

# A three-step toy playbook: a catalog change, a destructive batched step with loss
# and a report, and a media copy. The loss budget is a param so tests can lower it.
TOY_PLAYBOOK = """\
version: 1
name: toy-run
description: the toy procedure, end to end
params:
  batch: {type: integer, default: 10, description: items per checkpoint}
  lossy: {type: integer, default: 5, description: the loss budget}
site:
  root: site
  catalog: catalog.sqlite
safety:
  allow_loss: {items: "{{ lossy }}"}
steps:
  - id: offline
    action: toy.device
    args: {online: false}
  - id: mark
    action: toy.mark
    args: {batch: "{{ batch }}", report: reports/items.txt}
  - id: copy
    action: toy.copy
    args: {src: media/tape.bin, dst: media/copy.bin}
"""

#: the toy procedure's shipped report template (in tests/toy_templates/, its assets)
TOY_TEMPLATES = Path(__file__).parent / "toy_templates"
SHIPPED_TOY_TEMPLATE = (TOY_TEMPLATES / "toy" / "items.txt.j2").read_text()

#: the source tree (tests run from it); the shipped folders as the package finds them
PROJECT_ROOT = Path(__file__).resolve().parent.parent
PLAYBOOKS_DIR = as_path(playbook_folder())
SCHEMAS_DIR = as_path(schema_folder())
TEMPLATES_DIR = as_path(template_folder())


def invoke(*args: object, input: str | None = None) -> Result:
    """`recover ARGS...` in-process through click's CliRunner (stdin is not a tty)."""
    return CliRunner().invoke(
        cli, [str(a) for a in args], input=input, catch_exceptions=True, prog_name="recover"
    )


def assert_clean(result: Result) -> None:
    """The command ended through the CLI's own error handling: no Python traceback,
    no 'internal error' (a bug report), no exception escaping click."""
    text = result.output
    assert "Traceback" not in text, text
    assert "internal error" not in text, text
    if result.exception is not None:
        assert isinstance(result.exception, SystemExit), repr(result.exception)


def process_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECOVER_")}
    env.update(
        PYTHONPATH=str(ROOT),
        RECOVER_EXTRA_PROCEDURES=TOY_MODULE,
        RECOVER_NOW=NOW,
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.update(extra)
    return env


def run_process(
    *args: object, env: dict[str, str] | None = None, timeout: float = 60, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """`python -m runner ARGS...` as a real process (for SIGKILL, locks and ttys)."""
    return subprocess.run(
        [sys.executable, "-m", "runner", *map(str, args)],
        env=env or process_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
        **kwargs,
    )


def snapshot(root: Path, *, state: bool = True) -> dict[str, str]:
    """Every file (sha256 of all its bytes, and its mode), directory and link under root.

    With state=False the runner's own `.recover/` is left out (journals of two
    different runs differ in run ids and timings by design).
    """
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if not state and (rel == ".recover" or rel.startswith(".recover/")):
            continue
        if path.is_symlink():
            out[rel] = f"link -> {os.readlink(path)}"
        elif path.is_dir():
            out[rel] = "dir"
        else:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            out[rel] = f"{digest} mode={path.stat().st_mode & 0o7777:o}"
    return out


def catalog_rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of a SQLite file, in primary-key order."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")
        ]
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in tables}
    finally:
        conn.close()


def status(site: Path) -> dict[str, Any]:
    result = invoke("status", "--site", site, "--json")
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def steps_of(site: Path, run: int = 0) -> dict[str, dict[str, Any]]:
    """The steps of the newest (or n-th newest) run, by id."""
    return {s["step_id"]: s for s in status(site)["runs"][run]["steps"]}


def pos(text: str, needle: str, nth: int = 1) -> tuple[int, int]:
    """1-based (line, col) of the nth occurrence of needle in text."""
    at = -1
    for _ in range(nth):
        at = text.index(needle, at + 1)
    line = text.count("\n", 0, at) + 1
    col = at - (text.rfind("\n", 0, at) + 1) + 1
    return line, col


def site_files(root: Path, *skip: str) -> dict[str, str]:
    """Every file under a site but the runner's state and `skip`: path -> sha256."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith(".recover") or not path.is_file() or rel in skip:
            continue
        out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def catalog_site_files(root: Path) -> dict[str, str]:
    """Every file under a site with a `catalog.sqlite`, but the state and the catalog."""
    return site_files(root, "catalog.sqlite")


def catalog_site_snapshot(root: Path) -> tuple[dict[str, str], str]:
    """Files by content plus the catalog's bytes: 'byte-identical' means both equal."""
    catalog = hashlib.sha256((root / "catalog.sqlite").read_bytes()).hexdigest()
    return catalog_site_files(root), catalog


def catalog_dump(path: Path, tables: tuple[str, ...]) -> dict[str, list[tuple[Any, ...]]]:
    """The given tables' rows, in a stable order, to compare two catalogs."""
    conn = sqlite3.connect(path)
    try:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in tables}
    finally:
        conn.close()


def step_outputs(site: Path, step: str) -> dict[str, Any]:
    """The outputs the journal recorded for a step's latest attempt."""
    conn = sqlite3.connect(site / ".recover" / "journal.sqlite")
    try:
        row = conn.execute(
            "SELECT outputs_json FROM recover_steps WHERE step_id = ? ORDER BY rowid DESC LIMIT 1",
            (step,),
        ).fetchone()
    finally:
        conn.close()
    return dict(json.loads(row[0]))


def fix_line(output: str) -> str:
    """The last `fix:` line a refusal printed (there must be one)."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip().startswith("fix:")]
    assert lines, output
    return lines[-1]


def playbook_copy(playbook: Path, tmp_path: Path, edit: Any) -> Path:
    """A copy of a shipped playbook changed by edit(doc), as an operator edits one."""
    doc = yaml.safe_load(playbook.read_text())
    edit(doc)
    path = tmp_path / playbook.name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path
