"""What a correct recovery of a generated site finds (scenario.json)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def expected(items: Sequence[Mapping[str, Any]], damaged: Sequence[int]) -> dict[str, Any]:
    """The scan marks exactly `damaged`; the purge deletes them and keeps the rest."""
    return {"items": len(items), "damaged": list(damaged), "kept": len(items) - len(damaged)}
