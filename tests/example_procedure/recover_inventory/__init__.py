"""Inventory repair: an example procedure shipped as its own distribution.

A parts store keeps its items in a SQLite catalog and one record per item in a
shelf file. `inventory.scan` finds the items whose shelf record is missing or
fails its checksum; `inventory.purge` removes them from catalog and shelf (the
data loss the playbook budgets for) and writes a report.

Registration only: everything else lives in the modules named below. See
docs/adding_a_procedure.md in the recover repository for the walk-through.
"""

from __future__ import annotations

from pathlib import Path

from recover_inventory.actions import ACTIONS
from recover_inventory.rules import validate_steps
from recover_inventory.world import Options, generate
from recover_inventory.world.cli import command
from runner.contract import DemoCase, Procedure, ProcedureAssets

#: schemas/, templates/ and playbooks/ inside this package, in a wheel as in a checkout
ASSETS = ProcedureAssets.of_package(__name__)


def demo(base: Path) -> list[DemoCase]:
    """A small site with three damaged shelf records, and the shipped playbook."""
    site = base / "site"
    generate(site, Options(seed=1))
    return [
        DemoCase(
            "inventory: scan the shelf, purge the damaged items",
            playbook=ASSETS.playbook("inventory-repair.yaml"),
            site=site,
        )
    ]


PROCEDURE = Procedure(
    name="inventory",
    title="Inventory repair: purge items whose shelf record is damaged",
    actions=ACTIONS,
    assets=ASSETS,
    world=command,
    demo=demo,
    validate_steps=validate_steps,
)
