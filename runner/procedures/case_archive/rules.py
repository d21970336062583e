"""Static cross-step checks of a playbook's cases.* steps (for `recover validate`).

None today, on purpose. Every rule of the case archive depends on the site:
whether a tape is old, current or loaded, the access window against the time a
tape step starts, which sessions and cases exist, how full the cache and the tape are.
The cross-step candidates (a one-time session stored twice, a case restored
twice without a delete between) are not certain from the playbook alone: a
step's `when:` may skip the first, and `--param` may change the names the
defaults render. The actions' checks refuse them on the site instead.
"""

from __future__ import annotations

from runner.contract import Finding, StepView


def validate_steps(steps: list[StepView]) -> list[Finding]:
    """No static rule holds for every site (see the module docstring)."""
    return []
