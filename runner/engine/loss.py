"""A run's data loss against the playbook's budget, counted in one place.

The loss gate that refuses a step, the plan's totals and verdict, and the
summary after a run all read the same tally, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from runner.engine.journal import StepRecord


@dataclass(frozen=True)
class LossTally:
    """Total loss per unit, in the order the units were first lost, and the budget.

    `allowed` maps a unit to its budget (None = unlimited); a unit the playbook
    does not name allows no loss at all."""

    totals: dict[str, int]
    allowed: Mapping[str, int | None] = field(default_factory=dict)

    @classmethod
    def of(cls, records: Iterable[StepRecord], allowed: Mapping[str, int | None]) -> LossTally:
        totals: dict[str, int] = {}
        for record in records:
            for unit, count in record.loss.items():
                totals[unit] = totals.get(unit, 0) + count
        return cls(totals, allowed)

    def allowed_for(self, unit: str) -> int | None:
        return self.allowed.get(unit, 0)

    def exceeded(self) -> list[str]:
        """The units lost beyond their budget, in the totals' order."""
        out = []
        for unit, total in self.totals.items():
            budget = self.allowed_for(unit)
            if budget is not None and total > budget:
                out.append(unit)
        return out

    def allowed_json(self) -> dict[str, int | str]:
        """The budget as a plan file shows it."""
        return {unit: ("unlimited" if v is None else v) for unit, v in self.allowed.items()}

    def describe(self) -> list[str]:
        """The lines an operator reads after a plan or a run."""
        if not self.totals:
            return ["Data loss: none."]
        parts = []
        for unit, count in sorted(self.totals.items()):
            budget = self.allowed_for(unit)
            parts.append(f"{count:,} {unit} (allowed: {'unlimited' if budget is None else budget})")
        return ["Data loss: " + "; ".join(parts) + "."]
