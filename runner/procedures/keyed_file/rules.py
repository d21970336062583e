"""Static cross-step rules of keyed playbooks, for `recover validate` (no site needed)."""

from __future__ import annotations

from runner.contract import Finding, StepView


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
