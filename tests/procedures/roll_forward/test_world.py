"""The generator is deterministic, and its site holds what scenario.json says."""

from __future__ import annotations

from pathlib import Path

from runner.contract import StepView
from runner.procedures import load_registry
from runner.procedures.roll_forward import PROCEDURE
from runner.procedures.roll_forward.rules import validate_steps
from tests.procedures.roll_forward.conftest import invoke, scenario, snapshot


def test_same_seed_same_site(tmp_path: Path) -> None:
    for name in ("a", "b"):
        result = invoke(
            "world", "rollforward", str(tmp_path / name), "--seed", "7", "--transactions", "80"
        )
        assert result.exit_code == 0, result.output
    assert snapshot(tmp_path / "a") == snapshot(tmp_path / "b")
    other = invoke(
        "world", "rollforward", str(tmp_path / "c"), "--seed", "8", "--transactions", "80"
    )
    assert other.exit_code == 0
    assert (
        snapshot(tmp_path / "a")["logs/dblog.1.log"] != snapshot(tmp_path / "c")["logs/dblog.1.log"]
    )


def test_world_options(make_site) -> None:
    site = make_site(seed=61, files=5, drop_log_file=3, mismatch_stamp="staff")
    s = scenario(site)
    assert len(s["files"]) >= 4
    assert s["dropped_file"] == "logs/dblog.3.log"
    assert not (site / "logs/dblog.3.log").exists() and (site / "spare/dblog.3.log").exists()
    assert s["expected"]["dependent_txns"] == [900002, 900003]
    assert sum(p["incomplete"] for p in s["expected"]["per_db"].values()) >= 2


def test_registered_with_a_demo(tmp_path: Path) -> None:
    assert PROCEDURE in load_registry({}).procedures
    cases = PROCEDURE.demo(tmp_path)  # type: ignore[misc]
    assert cases and (cases[0].site / "scenario.json").exists()
    assert cases[0].playbook.exists()


def test_validate_steps_finds_wrong_orders() -> None:
    steps = [
        StepView(0, "o", "rollforward.set_flags", {"access": "enabled"}),
        StepView(1, "r", "rollforward.recover", {}),
        StepView(2, "b", "rollforward.restore", {}),
    ]
    found = validate_steps(steps)
    assert [f.path for f in found] == [("steps", 0, "args", "access"), ("steps", 2, "action")]


def test_actions_share_one_base_and_keep_the_contracts_check() -> None:
    from runner.contract import Action
    from runner.procedures.roll_forward.actions.base import RollForwardAction

    for action in PROCEDURE.action_classes():
        assert issubclass(action, RollForwardAction), action
        assert action.check is Action.check, f"{action.name} overrides check()"
