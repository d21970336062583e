"""Case archive: store weather products to archive tapes, restore them as named cases.

See docs/case_archive.md and the domain note case-archive.md.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from runner import clock
from runner.assets import shipped_procedure_assets
from runner.contract import DemoCase, Procedure
from runner.procedures.case_archive.cli import world
from runner.procedures.case_archive.restore import DeleteCase, Restore
from runner.procedures.case_archive.store import Store
from runner.procedures.case_archive.tapes import LoadTape, NewTape, ReinitTape, WriteTape
from runner.procedures.case_archive.world import Options, build

ASSETS = shipped_procedure_assets()
PLAYBOOK = ASSETS.playbook("case-archive.yaml")


def demo(base: Path) -> list[DemoCase]:
    """A small archive whose tape window is open around the run's clock."""
    site = base / "archive"
    now = clock.now()
    window = f"{(now - timedelta(hours=1)):%H:%M}-{(now + timedelta(hours=2)):%H:%M}"
    build(site, Options(seed=7, tape_window=window))
    return [
        DemoCase(
            "case archive: store a case, write the cache to tape, restore it as a case",
            playbook=PLAYBOOK,
            site=site,
        )
    ]


PROCEDURE = Procedure(
    assets=ASSETS,
    name="cases",
    title="Case archive store and restore to tape",
    actions=(Store, WriteTape, Restore, LoadTape, NewTape, ReinitTape, DeleteCase),
    world=world,
    demo=demo,
)
