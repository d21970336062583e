"""Static check: the five modes run in the domain's order for each volume.

mark_affected_locations (may repeat) < pre_recovery_assessment <
recovery_attempt / post_recovery_assessment (any mix, repeatable) < clean_up.
Steps are grouped by their unrendered `volume` argument: two steps with the
same text (`"{{ volume }}"` or `VOL0003`) name the same volume.
"""

from __future__ import annotations

from runner.contract import Finding, StepView

MODE_RANK = {
    "archive.mark_affected_locations": 0,
    "archive.pre_recovery_assessment": 1,
    "archive.recovery_attempt": 2,
    "archive.post_recovery_assessment": 2,
    "archive.clean_up": 3,
}
ORDER_TEXT = (
    "mark_affected_locations, pre_recovery_assessment, recovery_attempt "
    "(post_recovery_assessment may run between attempts), clean_up"
)


def validate_steps(steps: list[StepView]) -> list[Finding]:
    """Report every mode step that comes after a later mode of the same volume."""
    findings: list[Finding] = []
    latest: dict[str, StepView] = {}  # volume -> the highest-ranked mode step so far
    for step in steps:
        rank = MODE_RANK.get(step.action)
        if rank is None:
            continue
        volume = str(step.args.get("volume", ""))
        before = latest.get(volume)
        if before is not None and MODE_RANK[before.action] > rank:
            findings.append(
                Finding(
                    ("steps", step.index, "action"),
                    f"{step.action} (step {step.id!r}) comes after {before.action} "
                    f"(step {before.id!r}) for volume {volume}; the modes must run in the "
                    f"order {ORDER_TEXT}",
                    fix=f"move step {step.id!r} before step {before.id!r}",
                )
            )
            continue
        if before is None or rank >= MODE_RANK[before.action]:
            latest[volume] = step
    return findings
