"""`recover validate` catches pools.fix mistakes without a site."""

from __future__ import annotations

from pathlib import Path

from .conftest import recover


def _playbook(tmp_path: Path, args: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(
        "version: 1\nname: p\nparams: {since: {type: string, default: yesterday}}\nsteps:\n"
        f"  - id: fix\n    action: pools.fix\n    args: {args}\n"
    )
    return path


def test_bad_literal_window_is_found_with_its_position(tmp_path: Path) -> None:
    result = recover("validate", _playbook(tmp_path, "{allow_missing_data_since: 'last week'}"))
    assert result.exit_code == 1
    assert "p.yaml:7:38:" in result.output and "not a date-time" in result.output


def test_fix_without_force_or_elements_is_found(tmp_path: Path) -> None:
    result = recover("validate", _playbook(tmp_path, "{fix: true}"))
    assert result.exit_code == 1 and "none are named" in result.output


def test_good_steps_pass(tmp_path: Path) -> None:
    for args in (
        "{force: true, fix: true, allow_missing_data_since: '{{ since }}'}",
        "{fix: true, elements: [/vobs/a.c], allow_missing_data_since: '2026-01-14'}",
        "{}",
    ):
        result = recover("validate", _playbook(tmp_path, args))
        assert result.exit_code == 0, (args, result.output)
