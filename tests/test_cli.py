"""The command line: help texts, exit codes, and no traceback for any bad input."""

from __future__ import annotations

import shutil
import string
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner import __version__
from runner.demo import prepare
from runner.errors import RecoverError
from tests.helpers import TOY_PLAYBOOK, assert_clean, invoke, process_env, run_process

WritePlaybook = Callable[..., Path]

COMMANDS = [
    (),
    ("validate",),
    ("plan",),
    ("run",),
    ("status",),
    ("schema",),
    ("demo",),
    ("world",),
    ("world", "archive"),
    ("world", "keyed"),
    ("world", "pools"),
    ("world", "rollforward"),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "recover")
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_every_command_has_help(command: tuple[str, ...], flag: str) -> None:
    result = invoke(*command, flag)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Usage: recover" + "".join(f" {c}" for c in command))
    assert "-h, --help" in result.stdout
    if command and command != ("world", "rollforward"):
        assert "Example" in result.stdout


def test_top_level_help_lists_commands_and_exit_codes() -> None:
    text = invoke("--help").stdout
    flat = " ".join(text.split())
    for name in ("validate", "plan", "run", "status", "world", "demo", "schema"):
        assert f"  {name} " in text
    assert "Exit codes: 0 success; 1 invalid playbook" in flat
    assert "2 usage error; 3 refused by a safety gate" in flat
    assert "130 interrupted" in flat


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout == f"recover, version {__version__}\n"


def test_the_console_script_and_python_m_runner(tmp_path: Path) -> None:
    script = shutil.which("recover") or str(Path(sys.executable).parent / "recover")
    import subprocess

    done = subprocess.run(
        [script, "--version"], capture_output=True, text=True, env=process_env(), check=False
    )
    assert done.returncode == 0 and done.stdout.strip() == f"recover, version {__version__}"
    done = run_process("validate", tmp_path / "nope.yaml")
    assert done.returncode == 1
    assert "nope.yaml:1:1: error R004 not-a-playbook: playbook file not found [$]" in done.stdout


# -- exit codes --------------------------------------------------------------------------


def test_exit_0_1_2_3(toy_playbook: Path, write_playbook: WritePlaybook) -> None:
    assert invoke("validate", toy_playbook).exit_code == 0
    bad = write_playbook("version: 1\nname: t\nsteps: []\n", "bad.yaml")
    assert invoke("validate", bad).exit_code == 1
    assert invoke("validate").exit_code == 2
    assert invoke("run", toy_playbook).exit_code == 3


@pytest.mark.parametrize(
    "args",
    [
        ("--bogus",),
        ("nosuch",),
        ("plan",),
        ("plan", "{pb}", "--param", "batch"),
        ("plan", "{pb}", "--param", "=5"),
        ("plan", "{pb}", "--param", "bach=5"),
        ("plan", "{pb}", "--param", "batch=ten"),
        ("plan", "{pb}", "--param", "batch=[1"),
        ("plan", "{pb}", "--param", "lossy=1.5"),
        ("run", "{pb}", "--yes", "--param", "batch=true"),
        ("run", "{pb}", "--plan", "{dir}"),
        ("plan", "{pb}", "--site", "{pb}"),
        ("plan", "{dir}"),
        ("status", "--limit", "abc"),
        ("status", "--site", "{pb}"),
        ("world", "nosuch", "x"),
        ("schema", "--nope"),
    ],
)
def test_usage_errors_exit_2_without_a_traceback(
    toy_playbook: Path, tmp_path: Path, args: tuple[str, ...]
) -> None:
    filled = [a.format(pb=toy_playbook, dir=tmp_path) for a in args]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    result = invoke(*filled)
    assert result.exit_code == 2, result.output
    assert_clean(result)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_a_missing_required_param_is_a_usage_error(
    toy_site: Path, write_playbook: WritePlaybook
) -> None:
    text = TOY_PLAYBOOK.replace(
        "  batch: {type: integer, default: 10, description: items per checkpoint}",
        "  batch: {type: integer}",
    )
    result = invoke("plan", write_playbook(text))
    assert result.exit_code == 2
    assert_clean(result)
    assert "param 'batch' has no default and was not given" in result.stderr
    assert "fix: add --param batch=VALUE" in result.stderr
    assert invoke("plan", write_playbook(text), "--param", "batch=4").exit_code == 0


def test_an_unknown_param_says_did_you_mean(toy_playbook: Path) -> None:
    result = invoke("plan", toy_playbook, "--param", "bach=5")
    assert "--param bach: the playbook declares no such param; did you mean 'batch'?" in (
        result.stderr
    )


def test_a_wrong_param_type_shows_an_example(toy_playbook: Path) -> None:
    result = invoke("plan", toy_playbook, "--param", "batch=ten")
    assert "--param batch: expected integer, got 'ten'" in result.stderr
    assert "fix: --param batch=42" in result.stderr


def test_exit_codes_through_the_real_entry_point(toy_site: Path, toy_playbook: Path) -> None:
    assert run_process("--bogus").returncode == 2
    assert run_process("plan", toy_playbook, "--param", "batch=ten").returncode == 2
    done = run_process("run", toy_playbook)
    assert done.returncode == 3 and "Traceback" not in done.stderr
    done = run_process("plan", toy_playbook, env=process_env(RECOVER_NOW="not a date"))
    assert done.returncode == 2
    assert "RECOVER_NOW='not a date' is not an ISO date-time" in done.stderr


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("plan", "{missing}"), 1),
        (("run", "{missing}", "--yes"), 1),
        (("plan", "{empty}"), 1),
        (("run", "{empty}", "--yes"), 1),
        (("plan", "{pb}", "--site", "{missing_dir}"), 1),
        (("schema", "--action", "nope.nope"), 1),
    ],
)
def test_bad_input_exits_1_without_a_traceback(
    toy_playbook: Path, tmp_path: Path, args: tuple[str, ...], code: int
) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    filled = [
        a.format(
            pb=toy_playbook,
            missing=tmp_path / "missing.yaml",
            empty=empty,
            missing_dir=tmp_path / "nowhere",
        )
        for a in args
    ]
    result = invoke(*filled)
    assert result.exit_code == code, result.output
    assert_clean(result)
    assert "error: " in result.stderr


def test_an_invalid_playbook_in_plan_prints_every_diagnostic(
    toy_site: Path, write_playbook: WritePlaybook
) -> None:
    text = TOY_PLAYBOOK.replace("toy.device", "toy.devise").replace('batch: "{{', 'bach: "{{')
    path = write_playbook(text)
    for command in (("plan",), ("run", "--yes")):
        result = invoke(*command, path)
        assert result.exit_code == 1
        assert_clean(result)
        assert "unknown action 'toy.devise'" in result.stderr
        assert "unknown key 'bach'" in result.stderr
        assert "error: 2 problem(s) in the playbook" in result.stderr
    assert not (toy_site / ".recover").exists()


_VALUES = st.text(alphabet=string.printable, max_size=20).filter(
    lambda v: not (any(c.isdigit() for c in v) and "-" in v)  # see the date xfail
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(value=_VALUES, name=st.sampled_from(["batch", "lossy", "bach", "x"]))
def test_any_param_value_is_accepted_or_a_usage_error(
    toy_playbook: Path, tmp_path: Path, value: str, name: str
) -> None:
    result = invoke(
        "plan", toy_playbook, "--site", tmp_path / "nowhere", "--param", f"{name}={value}"
    )
    assert_clean(result)
    # 2: refused param; 1: the param was fine and the missing site was reached, or
    # the value is of the right type but makes a step's arguments invalid
    assert result.exit_code in (1, 2), result.output
    if result.exit_code == 1:
        assert "does not exist" in result.stderr or "before any step ran" in result.stderr


def test_an_impossible_date_param_is_a_usage_error(toy_playbook: Path) -> None:
    result = invoke("plan", toy_playbook, "--param", "batch=2020-13-45")
    assert_clean(result)
    assert result.exit_code == 2


def test_a_bad_extra_procedure_module_is_a_warning() -> None:
    """The tool still works (its own procedures) and says what it left out."""
    done = run_process(
        "world", "--help", env=process_env(RECOVER_EXTRA_PROCEDURES="no_such_module")
    )
    assert "Traceback" not in done.stderr
    assert "cannot load 'no_such_module'" in done.stderr
    assert done.returncode == 0
    assert "archive" in done.stdout


def test_help_loads_no_procedure() -> None:
    """`recover --help` needs no registry: a broken extra procedure is not even looked at."""
    done = run_process("--help", env=process_env(RECOVER_EXTRA_PROCEDURES="no_such_module"))
    assert done.returncode == 0 and done.stderr == ""


# -- demo -----------------------------------------------------------------------------------


def test_demo_runs_every_shipped_playbook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECOVER_EXTRA_PROCEDURES", raising=False)
    # After the generated case archive's data (2026-03-09): the demo stores it "now".
    monkeypatch.setenv("RECOVER_NOW", "2026-03-15T12:00:00+00:00")
    target = tmp_path / "demo"
    result = invoke("demo", target)
    assert result.exit_code == 0, result.output
    assert_clean(result)
    assert result.stdout.count("\n=== ") >= 5
    assert f"Demo sites are in {target.resolve()}." in result.stdout
    for name in ("archive", "cases", "keyed", "pools", "rollforward"):
        assert (target / name).is_dir(), name
    reports = [p for p in target.rglob("reports/*") if p.is_file()]
    assert reports
    again = invoke("demo", target)
    assert again.exit_code == 1
    assert_clean(again)
    assert "exists and is not empty" in again.stderr and "--force" in again.stderr


def test_demo_force_replaces_the_directory(tmp_path: Path) -> None:
    target = tmp_path / "demo"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RecoverError, match="not empty"):
        prepare(target, force=False)
    assert (target / "old.txt").exists()
    prepare(target, force=True)
    assert target.is_dir() and list(target.iterdir()) == []
    prepare(tmp_path / "new" / "deeper", force=False)
    assert (tmp_path / "new" / "deeper").is_dir()


def test_plan_output_into_a_missing_directory_is_a_clean_error(
    toy_playbook: Path, tmp_path: Path
) -> None:
    result = invoke("plan", toy_playbook, "-o", tmp_path / "no" / "such" / "plan.json")
    assert_clean(result)
    assert result.exit_code in (1, 2)
    assert "plan.json" in result.stderr


def test_loading_the_procedures_imports_no_generator_library() -> None:
    """sqlite-utils serves the world generators only: every other command (validate,
    plan, run, status) would pay its import, about 0.1 s, on each start."""
    code = (
        "import sys; from runner.procedures import load_registry; load_registry({}); "
        "import runner.cli; print('sqlite_utils' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
