"""The static mode-order check (recover validate)."""

from __future__ import annotations

from pathlib import Path

from runner.contract import StepView
from runner.procedures.archive_volume.rules import validate_steps
from tests.procedures.archive_volume.conftest import run_cli, write_playbook


def _steps(*spec: tuple[str, str]) -> list[StepView]:
    return [StepView(i, f"s{i}", f"archive.{a}", {"volume": v}) for i, (a, v) in enumerate(spec)]


def test_good_orders_pass() -> None:
    assert (
        validate_steps(
            _steps(
                ("mark_affected_locations", "V"),
                ("mark_affected_locations", "V"),
                ("pre_recovery_assessment", "V"),
                ("load", "V"),
                ("recovery_attempt", "V"),
                ("post_recovery_assessment", "V"),
                ("recovery_attempt", "V"),
                ("post_recovery_assessment", "V"),
                ("clean_up", "V"),
            )
        )
        == []
    )
    # Different volumes are independent; a partial sequence is fine.
    assert (
        validate_steps(
            _steps(
                ("pre_recovery_assessment", "A"),
                ("mark_affected_locations", "B"),
                ("post_recovery_assessment", "A"),
            )
        )
        == []
    )


def test_out_of_order_modes_are_reported_with_their_step() -> None:
    findings = validate_steps(
        _steps(
            ("pre_recovery_assessment", "V"),
            ("mark_affected_locations", "V"),
            ("clean_up", "V"),
            ("recovery_attempt", "V"),
        )
    )
    assert [f.path for f in findings] == [("steps", 1, "action"), ("steps", 3, "action")]
    assert "comes after archive.pre_recovery_assessment" in findings[0].message
    assert findings[0].fix == "move step 's1' before step 's0'"


def test_validate_reports_order_with_position(tmp_path: Path) -> None:
    playbook = write_playbook(
        tmp_path / "bad.yaml",
        [
            {"id": "pre", "action": "archive.pre_recovery_assessment", "args": {"volume": "V"}},
            {"id": "mark", "action": "archive.mark_affected_locations", "args": {"volume": "V"}},
        ],
    )
    result = run_cli("validate", playbook)
    assert result.exit_code == 1
    assert "comes after archive.pre_recovery_assessment" in result.output
    assert "bad.yaml:" in result.output
