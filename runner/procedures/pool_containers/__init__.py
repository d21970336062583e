"""Storage pool container reconstruction: check the pools, rebuild missing containers.

See docs/pool_containers.md and the domain note pool-containers.md.
"""

from __future__ import annotations

from pathlib import Path

from runner import clock
from runner.assets import shipped_procedure_assets
from runner.contract import DemoCase, Procedure
from runner.procedures.pool_containers import rules

ASSETS = shipped_procedure_assets()
PLAYBOOK = ASSETS.playbook("pool-container-fix.yaml")


def demo(base: Path) -> list[DemoCase]:
    """A small repository, fixed under the window its scenario assumes."""
    from runner.procedures.pool_containers.world import Options, generate

    site = base / "repository"
    # The repository's present is the run's clock, so "yesterday" means yesterday.
    scenario = generate(site, Options(seed=7, elements=60, now=clock.now()))
    return [
        DemoCase(
            "storage pools: check, then rebuild missing containers (force+fix, window "
            f"since {scenario['window']})",
            playbook=PLAYBOOK,
            site=site,
            params={"since": scenario["window"]},
        )
    ]


PROCEDURE = Procedure(
    name="pools",
    title="Storage pool container reconstruction",
    actions="runner.procedures.pool_containers.actions:ACTIONS",
    assets=ASSETS,
    world="runner.procedures.pool_containers.world.cli:command",
    demo=demo,
    validate_steps=rules.validate_steps,
)
