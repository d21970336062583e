"""Archive-volume recovery (PACS): recover the studies of a damaged archive volume.

See docs/archive_volume.md.
"""

from __future__ import annotations

from pathlib import Path

from runner.assets import shipped_procedure_assets
from runner.contract import DemoCase, Procedure
from runner.procedures.archive_volume import rules

ASSETS = shipped_procedure_assets()
PLAYBOOK = ASSETS.playbook("archive-volume-recovery.yaml")


def demo(base_dir: Path) -> list[DemoCase]:
    """A small damaged archive and the shipped recovery playbook, run end to end."""
    from runner.procedures.archive_volume.world import Options, generate

    site = base_dir
    generate(site, Options(studies=120))
    return [DemoCase("Recover the damaged archive volume VOL0002", PLAYBOOK, site)]


PROCEDURE = Procedure(
    name="archive",
    title="Archive-volume recovery (image archive / PACS)",
    actions="runner.procedures.archive_volume.actions:ACTIONS",
    assets=ASSETS,
    world="runner.procedures.archive_volume.world.cli:command",
    demo=demo,
    validate_steps=rules.validate_steps,
)
