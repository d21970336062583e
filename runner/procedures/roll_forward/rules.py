"""Static cross-step rules for `recover validate`: orders that cannot be right."""

from __future__ import annotations

from runner.contract import Finding, StepView

# The actions' names, not their classes: validation imports no action code.
RECOVER = "rollforward.recover"
RESTORE = "rollforward.restore"
SET_FLAGS = "rollforward.set_flags"


def validate_steps(steps: list[StepView]) -> list[Finding]:
    """Orders that cannot be right whatever the params."""
    findings = []
    recovered = False
    for step in steps:
        if step.action == RECOVER:
            recovered = True
        elif step.action == RESTORE and recovered:
            findings.append(
                Finding(
                    ("steps", step.index, "action"),
                    f"step {step.id!r} restores from backup after a roll forward: it would "
                    "throw the recovered transactions away",
                    fix="restore before rollforward.recover",
                )
            )
        elif (
            step.action == SET_FLAGS
            and not recovered
            and step.args.get("access") == "enabled"
            and any(s.action == RECOVER for s in steps)
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
