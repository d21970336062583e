"""Static checks of a playbook's pools steps (for `recover validate`, no site needed)."""

from __future__ import annotations

from runner.contract import Finding, StepView
from runner.errors import PreconditionFailed
from runner.playbook.template import has_template
from runner.procedures.pool_containers import window


def validate_steps(steps: list[StepView]) -> list[Finding]:
    """A pools.fix window that cannot parse, and fix without force naming no
    elements (a step that would only report)."""
    findings: list[Finding] = []
    for step in steps:
        if step.action != "pools.fix":
            continue
        args = step.args
        since = args.get("allow_missing_data_since")
        if isinstance(since, str) and not has_template(since):
            try:
                # Only the form is checked here; "in the future" depends on the run's clock.
                window.form(since)
            except PreconditionFailed as exc:
                findings.append(
                    Finding(
                        ("steps", step.index, "args", "allow_missing_data_since"),
                        exc.message,
                        exc.fix,
                    )
                )
        literal = {k: args.get(k) for k in ("fix", "force", "elements")}
        if literal["fix"] is True and literal["force"] in (None, False) and "elements" not in args:
            findings.append(
                Finding(
                    ("steps", step.index, "args", "fix"),
                    "fix without force changes only the elements named in `elements`, "
                    "and none are named: the step would only report",
                    "add force: true to fix every element the guards allow, or name the "
                    "elements to fix one by one in `elements`",
                )
            )
    return findings
