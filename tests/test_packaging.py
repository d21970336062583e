"""Packaging: what a wheel carries, a procedure from another distribution, load
errors, and which layers may import which.

The example procedure (tests/example_procedure, docs/adding_a_procedure.md) is
installed with pip into a temporary folder, never into the project's venv, and
driven through `python -m runner` from a temporary directory, so everything it
uses (its entry point, schemas, templates, playbook) is found where pip put it.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from runner import assets
from runner.procedures import EXTRA_ENV, load_registry
from tests.helpers import NOW, assert_clean, invoke, snapshot

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "tests" / "example_procedure"
SCHEMALESS = "tests.schemaless_procedure"

# What pip and setuptools leave in a source tree they build from: the tests
# build from copies so the checkout stays clean and no stale build/ leaks in.
BUILD_LEFTOVERS = ("build", "dist", "*.egg-info", "__pycache__")


def _pip(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


# -- a procedure from another distribution --------------------------------------------


@pytest.fixture(scope="module")
def example_lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example distribution installed (no dependencies) into its own folder."""
    base = tmp_path_factory.mktemp("example")
    source = base / "src"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns(*BUILD_LEFTOVERS))
    done = _pip("install", "-q", "--no-deps", "--target", base / "lib", source)
    assert done.returncode == 0, done.stderr
    return base / "lib"


def _recover(lib: Path, cwd: Path, *args: object) -> subprocess.CompletedProcess[str]:
    """`recover ARGS...` as a process that sees the example through PYTHONPATH only
    (importlib.metadata finds its entry point in the dist-info there)."""
    return _python(lib, cwd, "-m", "runner", *args)


def _python(lib: Path, cwd: Path, *args: object) -> subprocess.CompletedProcess[str]:
    """`python ARGS...` seeing the example through PYTHONPATH only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECOVER_")}
    env.update(
        PYTHONPATH=os.pathsep.join([str(lib), str(ROOT)]),
        RECOVER_NOW=NOW,
        PYTHONDONTWRITEBYTECODE="1",
    )
    return subprocess.run(
        [sys.executable, *map(str, args)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _items(catalog: Path) -> list[tuple[int, str, str, str]]:
    conn = sqlite3.connect(f"file:{catalog}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT id, bin, name, state FROM items ORDER BY id").fetchall()
    finally:
        conn.close()


def test_example_procedure_world_validate_plan_run(example_lib: Path, tmp_path: Path) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()

    made = _recover(example_lib, cwd, "world", "inventory", "site", "--items", "30")
    assert made.returncode == 0, made.stderr
    assert made.stdout == "inventory site in site: 30 items, 3 damaged shelf record(s)\n"
    site = cwd / "site"
    scenario = json.loads((site / "scenario.json").read_text())
    damaged = scenario["damaged"]
    assert scenario["items"] == 30 and scenario["kept"] == 27 and len(damaged) == 3
    before = _items(site / "catalog.sqlite")

    listed = _recover(example_lib, cwd, "playbooks", "--paths")
    assert listed.returncode == 0, listed.stderr
    playbook = next(
        Path(line) for line in listed.stdout.splitlines() if line.endswith("inventory-repair.yaml")
    )
    assert playbook.is_relative_to(example_lib), "the playbook is the one pip installed"

    checked = _recover(example_lib, cwd, "validate", playbook)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout == f"{playbook}: ok\n"

    untouched = snapshot(site, state=False)
    planned = _recover(example_lib, cwd, "plan", playbook, "--site", "site")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert "DATA LOSS: 3 items" in planned.stdout
    assert "report would be written to reports/inventory/purge.txt" in planned.stdout
    assert snapshot(site, state=False) == untouched

    ran = _recover(example_lib, cwd, "run", playbook, "--site", "site", "--yes")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "Data loss: 3 items (allowed: 5)." in ran.stdout

    # The catalog lost exactly the damaged items, the others are untouched.
    after = _items(site / "catalog.sqlite")
    assert after == [row for row in before if row[0] not in damaged]
    shelf = (site / "media" / "shelf.dat").read_text().splitlines()
    assert [int(line.split("\t")[0]) for line in shelf] == [row[0] for row in after]

    # The report, rendered from the template inside the installed package.
    lines = [f"  {i:6d}  {b}  {n}" for i, b, n, _ in before if i in damaged]
    assert (site / "reports" / "inventory" / "purge.txt").read_text() == (
        "INVENTORY PURGE REPORT\n"
        "at 2026-01-02T03:04:05Z, shelf media/shelf.dat\n"
        "\n"
        "3 damaged item(s) removed from the catalog and the shelf:\n"
        + "".join(line + "\n" for line in lines)
        + "\n27 item(s) kept.\n"
    )

    again = _recover(example_lib, cwd, "run", playbook, "--site", "site", "--yes")
    assert again.returncode == 0 and "already finished" in again.stdout


def test_example_procedure_schema_world_help_and_rules(example_lib: Path, tmp_path: Path) -> None:
    bundle = _recover(example_lib, tmp_path, "schema")
    assert bundle.returncode == 0, bundle.stderr
    assert "inventory.scan" in bundle.stdout and "inventory.purge" in bundle.stdout
    one = _recover(example_lib, tmp_path, "schema", "--action", "inventory.purge")
    shipped = example_lib / "recover_inventory" / "schemas" / "inventory.purge.schema.json"
    assert json.loads(one.stdout) == json.loads(shipped.read_text())

    worlds = _recover(example_lib, tmp_path, "world", "--help")
    assert "inventory" in worlds.stdout and worlds.stderr == ""

    # The procedure's static rule runs in `recover validate`.
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\nname: bad\nsteps:\n"
        "  - {id: purge, action: inventory.purge, args: {report: r.txt}}\n"
        "  - {id: scan, action: inventory.scan}\n"
    )
    refused = _recover(example_lib, tmp_path, "validate", bad)
    assert refused.returncode == 1
    assert "step 'purge' purges before any inventory.scan" in refused.stdout


DEMO = """\
import sys
from pathlib import Path
from runner.contract import Registry
from runner.demo import run_demos
from runner.procedures import load_registry

mine = [p for p in load_registry().procedures if p.name == "inventory"]
failed = run_demos(
    Path(sys.argv[1]), Registry(mine), on_case=lambda case: print(case.title),
    on_step=lambda outcome: None, on_done=lambda case, request, result: print(result.state),
    on_error=lambda exc: print(exc.render()),
)
sys.exit(failed)
"""


def test_example_procedure_demo(example_lib: Path, tmp_path: Path) -> None:
    done = _python(example_lib, tmp_path, "-c", DEMO, tmp_path / "demo")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("inventory: scan the shelf, purge the damaged items\n")
    assert (
        tmp_path / "demo" / "inventory" / "site" / "reports" / "inventory" / "purge.txt"
    ).is_file()


# -- an action without a schema ------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "cause"),
    [
        (SCHEMALESS, "bare.touch.schema.json does not exist"),
        (f"{SCHEMALESS}:NO_FOLDER", "names no schema folder"),
    ],
)
def test_an_action_without_a_schema_is_a_load_warning_and_an_unknown_action(
    module: str,
    cause: str,
    monkeypatch: pytest.MonkeyPatch,
    write_playbook: Callable[..., Path],
) -> None:
    registry = load_registry({EXTRA_ENV: module})
    assert "bare.touch" not in registry
    assert "bare" not in {p.name for p in registry.procedures}
    [warning] = registry.warnings
    assert "action 'bare.touch' has no argument schema" in warning and cause in warning

    monkeypatch.setenv(EXTRA_ENV, module)
    playbook = write_playbook(
        "version: 1\nname: bare\nsteps:\n  - {id: t, action: bare.touch, args: {anything: 1}}\n"
    )
    result = invoke("validate", playbook)
    assert_clean(result)
    assert result.exit_code == 1
    assert "action 'bare.touch' has no argument schema" in result.stderr
    assert "unknown action 'bare.touch'" in result.stdout
    assert "any arguments" not in result.output


# -- the wheel ------------------------------------------------------------------------

NOT_BUILT = ("bench", "tests", "sites", "demo-site", ".*", *BUILD_LEFTOVERS)


def test_the_wheel_carries_every_module_schema_template_and_playbook(tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*NOT_BUILT))
    done = _pip("wheel", "-q", "--no-deps", "-w", tmp_path / "dist", source)
    assert done.returncode == 0, done.stderr
    [wheel] = (tmp_path / "dist").glob("recover-*.whl")
    carried = set(zipfile.ZipFile(wheel).namelist())

    def tree(folder: str, pattern: str, inside: str) -> set[str]:
        base = ROOT / folder
        return {f"{inside}/{p.relative_to(base).as_posix()}" for p in base.glob(pattern)}

    wanted = (
        {"runner/assets/schemas/playbook.schema.json"}
        | tree("schemas", "**/*.json", "runner/assets/schemas")
        | tree("templates", "**/*.j2", "runner/assets/templates")
        | tree("playbooks", "*.yaml", "runner/assets/playbooks")
        | {p for p in tree("runner", "**/*.py", "runner") if "__pycache__" not in p}
    )
    assert len(wanted) > 60
    assert sorted(wanted - carried) == []
    entry_points = next(n for n in carried if n.endswith(".dist-info/entry_points.txt"))
    assert "recover = runner.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_assets_from_a_checkout_that_is_not_installed_editable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """runner imported from the project directory while a wheel (or nothing) is
    installed: runner.assets.schemas does not exist there, the top-level folders do."""

    def no_mapping(package: str) -> object:
        raise ModuleNotFoundError(f"No module named {package!r}")

    monkeypatch.setattr(assets, "files", no_mapping)
    assert assets.schema_folder() == ROOT / "schemas"
    assert assets.template_folder() == ROOT / "templates"
    assert assets.playbook_folder() == ROOT / "playbooks"
    monkeypatch.setattr(assets, "_CHECKOUT", tmp_path)  # installed, yet not mapped: a bug
    with pytest.raises(ModuleNotFoundError):
        assets.schema_folder()


# -- import layering ------------------------------------------------------------------

#: what the engine and the playbook layer may import from runner besides their own layer
BASE = ("contract", "errors", "site", "sandbox", "clock", "assets", "logs")
ALLOWED = {
    "engine": ("runner.engine", "runner.playbook", *(f"runner.{m}" for m in BASE)),
    "playbook": ("runner.playbook", *(f"runner.{m}" for m in BASE)),
}


def _runner_imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) for every import of something under runner."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            if module == "runner":  # from runner import clock: the module runner.clock
                found += [(node.lineno, f"runner.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, module))
    return [(line, m) for line, m in found if m == "runner" or m.startswith("runner.")]


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_engine_and_playbook_import_only_the_layers_below(layer: str) -> None:
    allowed = ALLOWED[layer]
    wrong = [
        f"{path.relative_to(ROOT)}:{line}: imports {module}"
        for path in sorted((ROOT / "runner" / layer).rglob("*.py"))
        for line, module in _runner_imports(path)
        if not any(module == a or module.startswith(a + ".") for a in allowed)
    ]
    assert wrong == [], "\n".join(wrong)
