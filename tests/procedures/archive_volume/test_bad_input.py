"""Every kind of bad input against a generated archive site: a clear message,
the right exit code, no traceback, and a byte-identical site."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.procedures.archive_volume.conftest import PLAYBOOK, run_cli, snapshot

SHIPPED = PLAYBOOK.read_text().replace("root: ../sites/archive", "root: .")

# (name, edit of the shipped playbook's text, message expected, fix hint expected)
PLAYBOOK_MISTAKES: list[tuple[str, tuple[str, str], str, str]] = [
    (
        "malformed YAML",
        ("steps:\n", "steps:\n  - id: [oops\n"),
        "YAML",
        ":",
    ),
    (
        "wrong type",
        ("default: 50, description: SEND", "default: many, description: SEND"),
        "max_jobs",
        "fix:",
    ),
    (
        "unknown key",
        ("  - id: scan\n    action:", "  - id: scan\n    acton: x\n    action:"),
        "acton",
        "did you mean",
    ),
    (
        "unknown action",
        ("action: archive.scan_volume", "action: archive.scan_volum"),
        "archive.scan_volum",
        "did you mean 'archive.scan_volume'",
    ),
    (
        "report path escaping the site",
        ("default: reports/pre_report.txt", "default: ../../x"),
        "leaves the site directory",
        "fix:",
    ),
    (
        "Jinja reaching Python internals",
        ('args: {volume: "{{ volume }}"}', "args: {volume: \"{{ ''.__class__.__mro__ }}\"}"),
        "unsafe",
        "fix:",
    ),
    (
        "modes out of order, one volume written literally",
        (
            "  - id: mark\n",
            "  - id: mark0\n    action: archive.clean_up\n    args: {volume: VOL0002}\n"
            "  - id: mark\n",
        ),
        "clean_up",
        "fix:",
    ),
    (
        "modes out of order",
        (
            "  - id: mark\n",
            "  - id: mark0\n    action: archive.clean_up\n"
            '    args: {volume: "{{ volume }}"}\n  - id: mark\n',
        ),
        "clean_up",
        "fix:",
    ),
]


@pytest.mark.parametrize(
    ("edit", "message", "hint"),
    [pytest.param(*m[1:], id=m[0]) for m in PLAYBOOK_MISTAKES],
)
@pytest.mark.parametrize("command", ["validate", "plan", "run"])
def test_playbook_mistakes(
    site: tuple[Path, dict[str, Any]],
    command: str,
    edit: tuple[str, str],
    message: str,
    hint: str,
) -> None:
    root, _ = site
    old, new = edit
    assert old in SHIPPED
    playbook = root.parent / "bad.yaml"
    playbook.write_text(SHIPPED.replace(old, new, 1))
    before = snapshot(root)
    args: list[Any] = [command, playbook]
    if command != "validate":
        args += ["--site", root, *(["--yes"] if command == "run" else [])]
    result = run_cli(*args)
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert hint in result.output
    assert f"{playbook}:" in result.output  # FILE:LINE:COL
    assert "Traceback" not in result.output
    assert snapshot(root) == before
    assert not (root / ".recover").exists()


def test_missing_catalog(site: tuple[Path, dict[str, Any]]) -> None:
    root, _ = site
    (root / "catalog.sqlite").rename(root / "catalog.moved")
    before = snapshot(root)
    for command in (["plan"], ["run", "--yes"]):
        result = run_cli(command[0], PLAYBOOK, "--site", root, *command[1:])
        assert result.exit_code == 1, result.output
        assert "catalog.sqlite does not exist" in result.output
        assert "Traceback" not in result.output
        assert snapshot(root) == before


def test_catalog_that_is_not_sqlite(site: tuple[Path, dict[str, Any]]) -> None:
    root, _ = site
    (root / "catalog.sqlite").write_bytes(b"not a database at all" * 100)
    before = snapshot(root)
    result = run_cli("run", PLAYBOOK, "--site", root, "--yes")
    assert result.exit_code == 1, result.output
    assert "not a readable SQLite database" in result.output
    assert snapshot(root) == before


@pytest.mark.parametrize("param", ["max_jobs=lots", "nope=1", "volume"])
def test_bad_params_are_usage_errors(site: tuple[Path, dict[str, Any]], param: str) -> None:
    root, _ = site
    before = snapshot(root)
    result = run_cli("plan", PLAYBOOK, "--site", root, "--param", param)
    assert result.exit_code in (1, 2), result.output
    assert "Traceback" not in result.output
    assert snapshot(root) == before


@pytest.mark.parametrize("command", ["plan", "run"])
def test_param_values_are_checked_before_any_step(
    site: tuple[Path, dict[str, Any]], command: str
) -> None:
    """Defaults pass `validate`; the values given with --param are checked again, all at
    once, before the first step, even for a step near the end of the playbook."""
    root, _ = site
    before = snapshot(root)
    result = run_cli(
        command,
        PLAYBOOK,
        "--site",
        root,
        "--param",
        "max_jobs=0",
        "--param",
        "post_report=../x",
        *(["--yes"] if command == "run" else []),
    )
    assert result.exit_code == 1, result.output
    assert "0 is less than the minimum of 1 [$.steps[6].args.max_jobs]" in result.output
    assert "path '../x' leaves the site directory [$.steps[7].args.report]" in result.output
    assert "2 problem(s) with these params, before any step ran" in result.output
    assert snapshot(root) == before
    assert not (root / ".recover").exists()
