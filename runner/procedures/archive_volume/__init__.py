"""Archive-volume recovery (PACS): recover the studies of a damaged archive volume.

See docs/archive_volume.md and shared/domain/archive-volume.md.
"""

from __future__ import annotations

from pathlib import Path

from runner.assets import shipped_procedure_assets
from runner.contract import DemoCase, Procedure
from runner.procedures.archive_volume.assess import (
    PostRecoveryAssessment,
    PreRecoveryAssessment,
)
from runner.procedures.archive_volume.cli import world_command
from runner.procedures.archive_volume.modes import CleanUp, MarkAffectedLocations
from runner.procedures.archive_volume.operator import Load, ScanVolume, Unload
from runner.procedures.archive_volume.order import validate_steps
from runner.procedures.archive_volume.recovery import RecoveryAttempt
from runner.procedures.archive_volume.world import WorldOptions, generate

ASSETS = shipped_procedure_assets()
PLAYBOOK = ASSETS.playbook("archive-volume-recovery.yaml")


def demo(base_dir: Path) -> list[DemoCase]:
    """A small damaged archive and the shipped recovery playbook, run end to end."""
    site = base_dir
    generate(site, WorldOptions(studies=120))
    return [DemoCase("Recover the damaged archive volume VOL0002", PLAYBOOK, site)]


PROCEDURE = Procedure(
    assets=ASSETS,
    name="archive",
    title="Archive-volume recovery (image archive / PACS)",
    actions=(
        Load,
        Unload,
        ScanVolume,
        MarkAffectedLocations,
        PreRecoveryAssessment,
        RecoveryAttempt,
        PostRecoveryAssessment,
        CleanUp,
    ),
    world=world_command,
    demo=demo,
    validate_steps=validate_steps,
)
