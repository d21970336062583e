"""Repairing a keyed (indexed sequential) file after a system failure.

A keyed file is a data file of fixed-length records plus a key file holding
one B-tree per key. See docs/keyed_file.md for the byte layout and
/work/shared/domain/keyed-file.md for the procedure this package implements.
"""

from __future__ import annotations

from pathlib import Path

from runner.assets import shipped_procedure_assets
from runner.contract import DemoCase, Finding, Procedure, StepView
from runner.procedures.keyed_file.actions import ACTIONS
from runner.procedures.keyed_file.cli import world
from runner.procedures.keyed_file.world import DAMAGE_KINDS, WorldSpec, generate

ASSETS = shipped_procedure_assets()
PLAYBOOK = ASSETS.playbook("keyed-file-repair.yaml")


def demo(base_dir: Path) -> list[DemoCase]:
    """A small crashed file with all four kinds of damage: verify, repair, reload, count."""
    site = base_dir / "crashed-customers"
    generate(site, WorldSpec(records=5_000, keys=3, damage=DAMAGE_KINDS, seed=7))
    return [
        DemoCase(
            "Keyed file after a crash: EOF, dangling and missing keys, a split past the EOF",
            playbook=PLAYBOOK,
            site=site,
            params={"data_file": "files/customers.dat", "key_file": "files/customers.key"},
        )
    ]


def validate_steps(steps: list[StepView]) -> list[Finding]:
    """Static order rules: repair before reload of the same pair; two distinct files."""
    findings = []
    reloaded: dict[str, str] = {}
    for step in steps:
        if not step.action.startswith("keyed."):
            continue
        data, key = step.args.get("data_file"), step.args.get("key_file")
        if data is not None and data == key:
            findings.append(
                Finding(
                    ("steps", step.index, "args", "key_file"),
                    "data_file and key_file name the same file",
                    fix="name the .dat and the .key file of the pair",
                )
            )
        pair = str(data)
        if step.action == "keyed.reload":
            reloaded.setdefault(pair, step.id)
        elif step.action == "keyed.repair" and pair in reloaded:
            findings.append(
                Finding(
                    ("steps", step.index, "action"),
                    f"keyed.repair comes after keyed.reload of the same file (step "
                    f"{reloaded[pair]!r}): reload refuses a crashed file, so repair must run first",
                    fix="move the repair step before the reload step",
                )
            )
    return findings


PROCEDURE = Procedure(
    assets=ASSETS,
    name="keyed",
    title="Keyed file repair and reload",
    actions=ACTIONS,
    world=world,
    demo=demo,
    validate_steps=validate_steps,
)
