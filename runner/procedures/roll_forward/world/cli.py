"""`recover world rollforward DIR`: generate a roll-forward site."""

from __future__ import annotations

from pathlib import Path

from runner.procedures.roll_forward.world.generator import Options, generate
from runner.worlds import world_command

HELP = "Generate a roll-forward site in DIRECTORY (databases, backups, logs, expected)."


def _build(directory: Path, options: Options) -> str:
    scenario = generate(directory, options)
    return (
        f"roll-forward site in {directory}: {scenario['records']:,} log records in "
        f"{len(scenario['files'])} file(s) of set {scenario['log_set']}; "
        "see scenario.json"
    )


command = world_command("rollforward", Options, _build, HELP)
