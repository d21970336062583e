"""`recover world pools DIR`: generate a repository site for the pool procedure."""

from __future__ import annotations

from pathlib import Path

from runner.errors import UsageError
from runner.procedures.pool_containers.world.generator import Options, generate
from runner.worlds import world_command

HELP = """A repository whose database and pools were restored from backups of different ages.

Identical, superset and subset alternates; elements rebuildable only from
other type managers or cleartext copies; versions truly lost, created before
and after the window; a branch that would lose all its versions above 0; a
few corrupt containers. scenario.json states the expected outcome.

\b
Example:
  recover world pools sites/pools --seed 7 --elements 500
"""


def _build(directory: Path, options: Options) -> str:
    """Generate the site; the generator's refusals stay `error:` lines (exit 2)."""
    if not 0 <= options.damaged <= 1 or not 0 <= options.cleartext <= 1:
        raise UsageError("--damaged and --cleartext are shares between 0 and 1")
    try:
        scenario = generate(directory, options)
    except (ValueError, FileExistsError) as exc:
        raise UsageError(str(exc)) from exc
    fix = scenario["expected"]["fix"]
    return (
        f"pools site in {directory}: {options.elements} elements, {scenario['pool_files']} pool "
        f"files, {fix['missing']} missing containers; window since {scenario['window']}; "
        f"expected outcome in {directory / 'scenario.json'}"
    )


command = world_command("pools", Options, _build, HELP)
