"""`recover validate` in CI: formats (SARIF checked against the SARIF 2.1.0
schema), directories and globs, `recover actions`, and the pre-commit hook."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft4Validator

from runner.playbook.diagnostics import Diagnostic, code_frame, github_annotation
from runner.procedures import load_registry
from tests.helpers import PLAYBOOKS_DIR, PROJECT_ROOT, invoke, process_env

SARIF_SCHEMA = Path(__file__).parent / "data" / "sarif-2.1.0-rtm.5.json"

BAD = """\
version: 1
name: bad
params:
  volume: {type: string, default: VOL0002}
steps:
  - id: scan
    action: archive.scan_volum
    args: {volume: "{{ volume }}"}
"""


def _tree(tmp_path: Path) -> Path:
    """A repository-like tree: a good playbook, a bad one, a nested .yml, a non-YAML file."""
    root = tmp_path / "repo"
    (root / "playbooks" / "nested").mkdir(parents=True)
    shutil.copy(PLAYBOOKS_DIR / "keyed-file-repair.yaml", root / "playbooks" / "good.yaml")
    (root / "playbooks" / "nested" / "bad.yml").write_text(BAD, encoding="utf-8")
    (root / "playbooks" / "notes.txt").write_text("not a playbook\n", encoding="utf-8")
    return root


def test_sarif_output_is_valid_sarif_2_1_0_with_rules_and_relative_locations(
    tmp_path: Path, monkeypatch: Any
) -> None:
    root = _tree(tmp_path)
    monkeypatch.chdir(root)
    result = invoke("validate", "--format", "sarif", "playbooks")
    assert result.exit_code == 1, result.output
    log = json.loads(result.stdout)
    schema = json.loads(SARIF_SCHEMA.read_text(encoding="utf-8"))
    errors = sorted(Draft4Validator(schema).iter_errors(log), key=str)
    assert errors == [], errors[:3]
    run = log["runs"][0]
    assert log["version"] == "2.1.0" and run["tool"]["driver"]["name"] == "recover"
    results = run["results"]
    warnings = [r for r in results if r["level"] == "warning"]
    (error,) = [r for r in results if r["level"] == "error"]
    assert error["ruleId"] == "R201" and "archive.scan_volume" in error["message"]["text"]
    location = error["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "playbooks/nested/bad.yml"
    assert location["region"] == {"startLine": 7, "startColumn": 13}
    rules = run["tool"]["driver"]["rules"]
    assert [rules[r["ruleIndex"]]["id"] for r in results] == [r["ruleId"] for r in results]
    assert {r["ruleId"] for r in warnings} == {"W302"}  # volume has no description


def test_github_format_is_one_workflow_command_per_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD, encoding="utf-8")
    result = invoke("validate", "--format", "github", path)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    error = next(line for line in lines if line.startswith("::error "))
    match = re.fullmatch(
        r"::error file=([^,]+),line=7,col=13,title=R201 unknown-action::(.*)", error
    )
    assert match, error
    assert match.group(1) == str(path).replace(":", "%3A").replace(",", "%2C")
    assert "%0Afix: did you mean 'archive.scan_volume'?" in match.group(2)
    assert "\n" not in match.group(2)
    assert any(line.startswith("::warning ") for line in lines)


def test_json_carries_rule_and_severity(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD, encoding="utf-8")
    found = json.loads(invoke("validate", "--json", path).stdout)
    assert {(d["rule"], d["rule_name"], d["severity"]) for d in found} == {
        ("R201", "unknown-action", "error"),
        ("W302", "param-undocumented", "warning"),
    }


def test_directories_and_globs(tmp_path: Path, monkeypatch: Any) -> None:
    root = _tree(tmp_path)
    monkeypatch.chdir(root)
    by_dir = invoke("validate", "playbooks")
    assert by_dir.exit_code == 1
    assert "playbooks/good.yaml: ok" in by_dir.stdout
    assert "playbooks/nested/bad.yml:7:13:" in by_dir.stdout
    assert "notes.txt" not in by_dir.output
    by_glob = invoke("validate", "playbooks/**/*.yml")
    assert by_glob.exit_code == 1 and "good.yaml" not in by_glob.stdout
    assert "bad.yml:7:13" in by_glob.stdout
    good_only = invoke("validate", "playbooks/*.yaml")
    assert good_only.exit_code == 0 and good_only.stdout == "playbooks/good.yaml: ok\n"
    nothing = invoke("validate", "elsewhere/*.yaml")
    assert nothing.exit_code == 1 and "playbook file not found" in nothing.stdout


def test_actions_lists_every_action_and_shows_one() -> None:
    registry = load_registry({})
    listing = invoke("actions")
    assert listing.exit_code == 0
    lines = listing.stdout.splitlines()
    assert [line.split()[0] for line in lines] == sorted(registry.actions)
    clean_up = next(line for line in lines if line.startswith("archive.clean_up "))
    assert clean_up.endswith("[destructive]")
    shown = invoke("actions", "archive.recovery_attempt")
    assert shown.exit_code == 0
    assert "  batches (an integer >= 1, or 'all', default 1)" in shown.stdout
    assert "  volume (a string, required)" in shown.stdout
    assert "  remaining_studies (integer): studies still in recovery afterwards" in shown.stdout
    assert "destructive: yes" in shown.stdout and "loss units: none" in shown.stdout
    assert "loss units: objects" in invoke("actions", "archive.clean_up").stdout
    typo = invoke("actions", "archive.clean_upp")
    assert typo.exit_code != 0 and "did you mean 'archive.clean_up'?" in typo.output


def _hook() -> dict[str, Any]:
    hooks = yaml.safe_load((PROJECT_ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    (hook,) = [h for h in hooks if h["id"] == "recover-validate"]
    return dict(hook)


@pytest.mark.slow
def test_the_pre_commit_hook_runs_as_pre_commit_runs_it(tmp_path: Path) -> None:
    """pre-commit runs `entry args... FILES` with the staged files its `files`
    pattern matches; this does exactly that in a git repository holding
    playbooks (pre-commit itself would install the package into its own
    environment first, which needs the network)."""
    hook = _hook()
    assert hook["language"] == "python" and hook.get("pass_filenames", True)
    root = _tree(tmp_path)
    env = {
        **process_env(),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "HOME": str(tmp_path),
    }
    env |= {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    subprocess.run(["git", "init", "-q", str(root)], check=True, env=env)
    subprocess.run(["git", "-C", str(root), "add", "."], check=True, env=env)
    staged = subprocess.run(
        ["git", "-C", str(root), "diff", "--cached", "--name-only"],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    ).stdout.split()
    pattern = re.compile(hook["files"])
    chosen = [name for name in staged if pattern.search(name)]
    assert sorted(chosen) == ["playbooks/good.yaml", "playbooks/nested/bad.yml"]
    script = shutil.which("recover") or str(Path(sys.executable).parent / "recover")
    command = [script, *hook["entry"].split()[1:], *hook.get("args", []), *chosen]
    failing = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
    assert failing.returncode == 1, failing.stdout + failing.stderr
    assert "playbooks/nested/bad.yml:7:13: error R201" in failing.stdout
    (root / "playbooks" / "nested" / "bad.yml").write_text(
        BAD.replace("scan_volum\n", "scan_volume\n").replace(
            "default: VOL0002}", "default: VOL0002, description: volume}"
        ),
        encoding="utf-8",
    )
    passing = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
    assert passing.returncode == 0, passing.stdout + passing.stderr


def _unescape(text: str) -> str:
    return (
        text.replace("%0A", "\n")
        .replace("%0D", "\r")
        .replace("%3A", ":")
        .replace("%2C", ",")
        .replace("%25", "%")
    )


@given(message=st.text(), file=st.text(min_size=1), fix=st.none() | st.text())
def test_a_github_annotation_is_one_line_whatever_the_text(
    message: str, file: str, fix: str | None
) -> None:
    line = github_annotation(Diagnostic(file, 3, 4, message, ("steps", 0), fix, "R201"))
    assert "\n" not in line and "\r" not in line
    head, _, data = line.partition("::")[2].partition("::")
    assert head.startswith("error file=")
    properties = dict(part.split("=", 1) for part in head.removeprefix("error ").split(","))
    assert _unescape(properties["file"]) == file
    assert properties["line"] == "3" and properties["col"] == "4"
    assert _unescape(data) == message + " [$.steps[0]]" + (f"\nfix: {fix}" if fix else "")


def test_the_text_form_has_rule_frame_and_fix() -> None:
    diagnostic = Diagnostic(
        "f.yaml", 2, 3, "boom", ("a",), "do this", "R001", code_frame("x\n\tab\n", 2, 3)
    )
    assert diagnostic.render() == (
        "f.yaml:2:3: error R001 yaml-syntax: boom [$.a]\n  2 | →ab\n        ^\n  fix: do this"
    )
