"""`recover world cases DIR`: generate a case-archive site."""

from __future__ import annotations

from pathlib import Path

from runner.errors import UsageError
from runner.procedures.case_archive.world.generator import Options, generate
from runner.worlds import world_command

HELP = """A weather-product archive: ingest disk, cache, an old and a current tape.

Sessions on the old tape and on the current tape (with one corrupt
record), one in the cache overlapping a taped one, a case in use.
scenario.json states what the shipped playbook must find. Tape steps
refuse outside the tape window: run them inside it, or generate the site
with --tape-window 00:00-24:00.

\b
Example:
  recover world cases sites/cases --seed 7 --products 5
"""


def _build(directory: Path, options: Options) -> str:
    try:
        scenario = generate(directory, options)
    except FileExistsError as exc:
        raise UsageError(str(exc)) from exc
    return (
        f"cases site in {directory}: {options.products} products over {options.hours} hours, "
        f"tapes {scenario['tapes']['old']} (old) and {scenario['tapes']['current']} (current), "
        f"{scenario['cache_files']} files in the cache; expected outcome in "
        f"{directory / 'scenario.json'}"
    )


command = world_command("cases", Options, _build, HELP)
