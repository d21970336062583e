"""`recover world keyed DIR ...`: generate a keyed-file site with crash damage."""

from __future__ import annotations

from pathlib import Path

import click

from runner.procedures.keyed_file.world.generator import Options, generate
from runner.worlds import world_command

HELP = """Generate a keyed-file site (data file + key file) with crash damage.

Writes DIRECTORY/files/NAME.dat, NAME.key and scenario.json (the expected
findings and figures of verify, repair, count and reload).

\b
Example:
  recover world keyed sites/keyed --seed 7 --records 100000 --damage eof,dangling,split,missing
"""


def _build(directory: Path, options: Options) -> str:
    """Generate the site; the summary line `recover world keyed` prints."""
    if not 1 <= options.fill_percent <= 100 or not 0 <= options.deleted_percent <= 100:
        raise click.BadParameter("percentages must be within 0..100")
    scenario = generate(directory, options)
    expected = scenario["expected"]
    return (
        f"keyed site in {directory}: {scenario['data_file']} + {scenario['key_file']}, "
        f"{options.records:,} records ({expected['valid_records']:,} valid), "
        f"{options.keys} key(s), damage: {', '.join(scenario['damage']) or 'none'}"
    )


command = world_command("keyed", Options, _build, HELP)
