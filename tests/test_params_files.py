"""Parameters from files (--params-file, --param NAME=@FILE), and `run --json`,
through the CLI on the toy site; the file parser with hypothesis."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.cli import _params_from_files
from runner.playbook.model import Playbook
from runner.playbook.validate import load_playbook
from runner.procedures import EXTRA_ENV, load_registry
from tests.helpers import TOY_MODULE, TOY_PLAYBOOK, assert_clean, invoke, status


def _planned_params(*args: object) -> dict[str, Any]:
    result = invoke("plan", *args, "--json")
    assert result.exit_code == 0, result.output
    params: dict[str, Any] = json.loads(result.stdout)["params"]
    return params


def test_files_in_order_then_param_wins(toy_playbook: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "a.yaml", tmp_path / "b.json"
    first.write_text("# site defaults\nbatch: 3\nlossy: 6\n")
    second.write_text('{"batch": 6}')
    assert _planned_params(toy_playbook, "--params-file", first) == {"batch": 3, "lossy": 6}
    both = ("--params-file", first, "--params-file", second)
    assert _planned_params(toy_playbook, *both) == {"batch": 6, "lossy": 6}
    # --param wins over every file, wherever it is given
    assert _planned_params(toy_playbook, "--param", "batch=8", *both) == {"batch": 8, "lossy": 6}
    assert _planned_params(toy_playbook, *both, "--param", "batch=9") == {"batch": 9, "lossy": 6}


def test_a_value_read_from_a_file(toy_playbook: Path, tmp_path: Path) -> None:
    value = tmp_path / "batch.txt"
    value.write_text("7\n")
    assert _planned_params(toy_playbook, "--param", f"batch=@{value}")["batch"] == 7
    escaped = invoke("plan", toy_playbook, "--param", "batch=@@7")
    assert escaped.exit_code == 2
    assert "--param batch: '@7' does not parse" in escaped.stderr


def test_params_from_files_reach_the_run_and_status(toy_playbook: Path, tmp_path: Path) -> None:
    values = tmp_path / "vars.yaml"
    values.write_text("batch: 4\n")
    ran = invoke("run", toy_playbook, "--params-file", values, "--yes", "--json")
    assert ran.exit_code == 0, ran.output
    document = json.loads(ran.stdout)  # stdout is one JSON document
    (run,) = status(toy_playbook.parent / "site")["runs"]
    assert document == run
    assert document["params"] == {"batch": 4, "lossy": 5}
    assert [s["state"] for s in document["steps"]] == ["done", "done", "done"]
    assert "[ok] mark: toy.mark  [destructive]  done" in ran.stderr  # the step view
    again = invoke("run", toy_playbook, "--params-file", values, "--yes", "--json")
    assert again.exit_code == 0
    assert json.loads(again.stdout) == run  # already finished: the same document


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("bach: 3\n", "param bach: the playbook declares no such param; did you mean 'batch'?"),
        ("zzz: 3\n", "declared params: batch, lossy"),
        ("batch: three\n", "param batch: expected integer, got 'three'"),
        ("- batch\n", "expected a mapping of param names to values, got list"),
        ("batch: [1\n", "vars.yaml:"),
        ("batch: 3\nbatch: 4\n", "vars.yaml:2:1: duplicate key"),
        ("batch: !!python/object/apply:os.system [true]\n", "vars.yaml:"),
    ],
)
def test_a_bad_params_file_is_a_usage_error_with_the_fix(
    toy_playbook: Path, tmp_path: Path, content: str, message: str
) -> None:
    values = tmp_path / "vars.yaml"
    values.write_text(content)
    result = invoke("plan", toy_playbook, "--params-file", values)
    assert result.exit_code == 2, result.output
    assert_clean(result)
    assert f"--params-file {values}" in result.stderr
    assert message in result.stderr


def test_a_missing_params_file_or_value_file(toy_playbook: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    for option in (("--params-file", missing), ("--param", f"batch=@{missing}")):
        result = invoke("plan", toy_playbook, *option)
        assert result.exit_code == 2
        assert_clean(result)
        assert str(missing) in result.stderr and "fix:" in result.stderr


@pytest.fixture(scope="module")
def toy_loaded(tmp_path_factory: pytest.TempPathFactory) -> Playbook:
    """The toy playbook loaded once (hypothesis examples share it)."""
    base = tmp_path_factory.mktemp("pf")
    path = base / "toy.yaml"
    path.write_text(TOY_PLAYBOOK)
    return load_playbook(path, load_registry({EXTRA_ENV: TOY_MODULE}))


_COMMENT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=20
)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batch=st.integers(min_value=-(10**12), max_value=10**12),
    lossy=st.integers(min_value=0, max_value=10**12),
    as_json=st.booleans(),
    comment=_COMMENT,
)
def test_a_params_file_reads_back_what_was_written(
    toy_loaded: Playbook, tmp_path: Path, batch: int, lossy: int, as_json: bool, comment: str
) -> None:
    values = {"batch": batch, "lossy": lossy}
    path = tmp_path / ("vars.json" if as_json else "vars.yaml")
    text = json.dumps(values) if as_json else f"# {comment}\n" + yaml.safe_dump(values)
    path.write_text(text, encoding="utf-8")
    assert _params_from_files(toy_loaded, (path,)) == values


def test_run_json_after_a_failure_prints_the_run_it_ran(toy_playbook: Path, toy_site: Path) -> None:
    import sqlite3

    with sqlite3.connect(toy_site / "catalog.sqlite") as conn:
        conn.execute("UPDATE settings SET online = 1")  # mark's check fails
    conn.close()
    failed = invoke("run", toy_playbook, "--only", "mark,copy", "--yes", "--json")
    assert failed.exit_code == 1
    document = json.loads(failed.stdout)
    assert document["state"] == "failed"
    assert [s["state"] for s in document["steps"]] == ["failed"]
    refused = invoke("run", toy_playbook, "--json")  # refused before any run: no document
    assert refused.exit_code == 3 and refused.stdout == ""
