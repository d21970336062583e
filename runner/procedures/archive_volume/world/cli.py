"""`recover world archive DIR`: generate an image-archive site with a damaged volume."""

from __future__ import annotations

from pathlib import Path

from runner.procedures.archive_volume.world.generator import Options, generate
from runner.worlds import world_command

HELP = """Generate an image-archive site in DIRECTORY (new or empty), deterministic from --seed.

It holds catalog.sqlite, volumes/VOLnnnn.vol, cache/ and scenario.json
(the damaged volume, its unreadable ranges and the expected outcome).

\b
Examples:
  recover world archive sites/archive
  recover world archive /tmp/big --studies 100000 --seed 7 --media none
"""


def _build(directory: Path, options: Options) -> str:
    """Generate the site; the summary of what was damaged, and where the outcome is."""
    scenario = generate(directory, options)
    expected = scenario["expected"]
    return (
        f"archive site written to {directory}: damaged volume {scenario['damaged_volume']} "
        f"({scenario['unreadable_blocks']:,} unreadable block(s) in "
        f"{len(scenario['unreadable_ranges'])} range(s)); {expected['studies_affected']:,} "
        f"study(ies) / {expected['objects_affected']:,} object(s) affected, "
        f"{expected['recoverable']:,} recoverable, {expected['unrecoverable']:,} unrecoverable\n"
        f"expected outcome: {directory / 'scenario.json'}"
    )


command = world_command("archive", Options, _build, HELP)
