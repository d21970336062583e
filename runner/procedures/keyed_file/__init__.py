"""Repairing a keyed (indexed sequential) file after a system failure.

A keyed file is a data file of fixed-length records plus a key file holding
one B-tree per key. docs/keyed_file.md gives the byte layout and the repair
and reload rules this package implements.
"""

from __future__ import annotations

from pathlib import Path

from runner.assets import shipped_procedure_assets
from runner.contract import DemoCase, Procedure
from runner.procedures.keyed_file import rules

ASSETS = shipped_procedure_assets()
PLAYBOOK = ASSETS.playbook("keyed-file-repair.yaml")


def demo(base_dir: Path) -> list[DemoCase]:
    """A small crashed file with all four kinds of damage: verify, repair, reload, count."""
    from runner.procedures.keyed_file.world.generator import DAMAGE_KINDS, Options, generate

    site = base_dir / "crashed-customers"
    generate(site, Options(records=5_000, keys=3, damage=DAMAGE_KINDS, seed=7))
    return [
        DemoCase(
            "Keyed file after a crash: EOF, dangling and missing keys, a split past the EOF",
            playbook=PLAYBOOK,
            site=site,
            params={"data_file": "files/customers.dat", "key_file": "files/customers.key"},
        )
    ]


PROCEDURE = Procedure(
    assets=ASSETS,
    name="keyed",
    title="Keyed file repair and reload",
    actions="runner.procedures.keyed_file.actions:ACTIONS",
    world="runner.procedures.keyed_file.world.cli:command",
    demo=demo,
    validate_steps=rules.validate_steps,
)
