"""Roll-forward recovery: restore a backup copy, re-apply completed transactions.

See docs/roll_forward.md for the tables, the log format, the actions and the
world generator.
"""

from __future__ import annotations

from pathlib import Path

from runner.assets import shipped_procedure_assets
from runner.contract import DemoCase, Procedure
from runner.procedures.roll_forward import rules

ASSETS = shipped_procedure_assets()


def demo(base_dir: Path) -> list[DemoCase]:
    from runner.procedures.roll_forward.world import Options, generate

    site = base_dir / "site"
    generate(site, Options(seed=3, transactions=300))
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
    actions="runner.procedures.roll_forward.actions:ACTIONS",
    world="runner.procedures.roll_forward.world.cli:command",
    demo=demo,
    validate_steps=rules.validate_steps,
)
