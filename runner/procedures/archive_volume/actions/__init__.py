"""The archive actions, in the order the shipped playbook uses them."""

from __future__ import annotations

from runner.contract import Action
from runner.procedures.archive_volume.actions.assess import (
    PostRecoveryAssessment,
    PreRecoveryAssessment,
)
from runner.procedures.archive_volume.actions.modes import CleanUp, MarkAffectedLocations
from runner.procedures.archive_volume.actions.operator import Load, ScanVolume, Unload
from runner.procedures.archive_volume.actions.recovery import RecoveryAttempt

ACTIONS: tuple[type[Action], ...] = (
    Load,
    Unload,
    ScanVolume,
    MarkAffectedLocations,
    PreRecoveryAssessment,
    RecoveryAttempt,
    PostRecoveryAssessment,
    CleanUp,
)
