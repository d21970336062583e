"""Static cross-step rules for `recover validate` (no site needed)."""

from __future__ import annotations

from runner.contract import Finding, StepView


def validate_steps(steps: list[StepView]) -> list[Finding]:
    """A purge must come after a scan: it deletes what the scan marked, and a
    purge with no scan before it would delete what an older scan marked."""
    findings = []
    scanned = False
    for step in steps:
        if step.action == "inventory.scan":
            scanned = True
        elif step.action == "inventory.purge" and not scanned:
            findings.append(
                Finding(
                    ("steps", step.index, "action"),
                    f"step {step.id!r} purges before any inventory.scan",
                    fix="add an inventory.scan step before it",
                )
            )
    return findings
