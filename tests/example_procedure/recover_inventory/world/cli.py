"""`recover world inventory DIR`: the command made from the generator's Options."""

from __future__ import annotations

from pathlib import Path

from recover_inventory.world.generator import Options, generate
from runner.worlds import world_command

HELP = """Generate an inventory site: a catalog of items and a shelf file in which
some records are damaged. scenario.json lists them.

\b
Example:
  recover world inventory sites/inventory --items 100 --damaged 5
"""


def _build(directory: Path, options: Options) -> str:
    scenario = generate(directory, options)
    return (
        f"inventory site in {directory}: {scenario['items']} items, "
        f"{len(scenario['damaged'])} damaged shelf record(s)"
    )


command = world_command("inventory", Options, _build, HELP)
