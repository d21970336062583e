"""Case archive: store weather products to archive tapes, restore them as named cases.

See docs/case_archive.md.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from runner import clock
from runner.assets import shipped_procedure_assets
from runner.contract import DemoCase, Procedure
from runner.procedures.case_archive import rules

ASSETS = shipped_procedure_assets()
PLAYBOOK = ASSETS.playbook("case-archive.yaml")


def demo(base: Path) -> list[DemoCase]:
    """A small archive whose tape window is open around the run's clock."""
    from runner.procedures.case_archive.world import Options, generate

    site = base / "archive"
    now = clock.now()
    window = f"{(now - timedelta(hours=1)):%H:%M}-{(now + timedelta(hours=2)):%H:%M}"
    generate(site, Options(seed=7, tape_window=window))
    return [
        DemoCase(
            "case archive: store a case, write the cache to tape, restore it as a case",
            playbook=PLAYBOOK,
            site=site,
        )
    ]


PROCEDURE = Procedure(
    name="cases",
    title="Case archive store and restore to tape",
    actions="runner.procedures.case_archive.actions:ACTIONS",
    assets=ASSETS,
    world="runner.procedures.case_archive.world.cli:command",
    demo=demo,
    validate_steps=rules.validate_steps,
)
