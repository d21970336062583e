"""Roll-forward recovery: restore a backup copy, re-apply completed transactions.

See docs/roll_forward.md for the tables, the log format, the actions and the
world generator.
"""

from __future__ import annotations

from pathlib import Path

from runner.assets import shipped_procedure_assets
from runner.contract import DemoCase, Finding, Procedure, StepView
from runner.procedures.roll_forward.cli import world
from runner.procedures.roll_forward.flags import Restore, SetFlags, ShowFlags
from runner.procedures.roll_forward.recover import Recover


def validate_steps(steps: list[StepView]) -> list[Finding]:
    """Orders that cannot be right whatever the params."""
    findings = []
    recovered = False
    for step in steps:
        if step.action == Recover.name:
            recovered = True
        elif step.action == Restore.name and recovered:
            findings.append(
                Finding(
                    ("steps", step.index, "action"),
                    f"step {step.id!r} restores from backup after a roll forward: it would "
                    "throw the recovered transactions away",
                    fix="restore before rollforward.recover",
                )
            )
        elif (
            step.action == SetFlags.name
            and not recovered
            and step.args.get("access") == "enabled"
            and any(s.action == Recover.name for s in steps)
        ):
            findings.append(
                Finding(
                    ("steps", step.index, "args", "access"),
                    f"step {step.id!r} enables access before the roll forward: users could "
                    "change the database and make the log discontinuous",
                    fix="enable access only after rollforward.recover",
                )
            )
    return findings


ASSETS = shipped_procedure_assets()


def demo(base_dir: Path) -> list[DemoCase]:
    from runner.procedures.roll_forward.world import Options, build

    site = base_dir / "site"
    build(site, Options(seed=3, transactions=300))
    return [
        DemoCase(
            "roll forward sales, stock and staff from backup and a crashed log set",
            playbook=ASSETS.playbook("roll-forward.yaml"),
            site=site,
            params={},
        )
    ]


PROCEDURE = Procedure(
    assets=ASSETS,
    name="rollforward",
    title="Roll-forward recovery of databases from a backup copy and the log set",
    actions=(ShowFlags, SetFlags, Restore, Recover),
    world=world,
    demo=demo,
    validate_steps=validate_steps,
)
