"""`recover world cases DIR`: generate a case-archive site."""

from __future__ import annotations

from pathlib import Path

import click

from runner.errors import UsageError
from runner.procedures.case_archive.world import Options, build


@click.command()
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option("--seed", default=7, show_default=True, help="Random seed (same seed, same site).")
@click.option("--products", default=4, show_default=True, help="Number of products (4-7).")
@click.option("--hours", default=24, show_default=True, help="Hours of ingest data (hourly).")
def world(directory: Path, seed: int, products: int, hours: int) -> None:
    """A weather-product archive: ingest disk, cache, an old and a current tape.

    Sessions on the old tape and on the current tape (with one corrupt
    record), one in the cache overlapping a taped one, a case in use.
    scenario.json states what the shipped playbook must find. Pin the run's
    clock to the site's present (inside the tape window) with
    RECOVER_NOW=2026-03-10T20:00:00+00:00.

    \b
    Example:
      recover world cases sites/cases --seed 7 --products 5
    """
    try:
        scenario = build(directory, Options(seed=seed, products=products, hours=hours))
    except (ValueError, FileExistsError) as exc:
        raise UsageError(str(exc)) from exc
    click.echo(
        f"cases site in {directory}: {products} products over {hours} hours, tapes "
        f"{scenario['tapes']['old']} (old) and {scenario['tapes']['current']} (current), "
        f"{scenario['cache_files']} files in the cache; expected outcome in "
        f"{directory / 'scenario.json'}"
    )
