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


def test_validate_accepts_what_the_parser_accepts(tmp_path: Path) -> None:
    """The version-history tool's forms validate; a misspelt one is found with the
    accepted forms as its fix. Whether a moment is in the future needs the run's clock."""
    for since in ("yesterday.17:00", "today.08:30", "22-January", "22-Jan-2099.10:00"):
        args = f"{{fix: true, force: true, allow_missing_data_since: '{since}'}}"
        result = recover("validate", _playbook(tmp_path, args))
        assert result.exit_code == 0, (since, result.output)
    result = recover("validate", _playbook(tmp_path, "{allow_missing_data_since: '22-Jnauary'}"))
    assert result.exit_code == 1
    assert "is not a month name" in result.output and "yesterday.17:00" in result.output
