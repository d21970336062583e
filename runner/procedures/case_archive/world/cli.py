"""`recover world cases DIR`: generate a case-archive site."""

from __future__ import annotations

from pathlib import Path

import click

from runner.errors import UsageError
from runner.procedures.case_archive.common import parse_window
from runner.procedures.case_archive.world import Options, build


@click.command()
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option("--seed", default=7, show_default=True, help="Random seed (same seed, same site).")
@click.option("--products", default=4, show_default=True, help="Number of products (4-7).")
@click.option("--hours", default=24, show_default=True, help="Hours of ingest data (hourly).")
@click.option(
    "--tape-window",
    default="18:00-06:00",
    show_default=True,
    help="Daily tape access window, HH:MM-HH:MM in UTC (00:00-24:00: always).",
)
def world(directory: Path, seed: int, products: int, hours: int, tape_window: str) -> None:
    """A weather-product archive: ingest disk, cache, an old and a current tape.

    Sessions on the old tape and on the current tape (with one corrupt
    record), one in the cache overlapping a taped one, a case in use.
    scenario.json states what the shipped playbook must find. Tape steps
    refuse outside the tape window: run them inside it, or generate the site
    with --tape-window 00:00-24:00.

    \b
    Example:
      recover world cases sites/cases --seed 7 --products 5
    """
    try:
        parse_window(tape_window)
        scenario = build(
            directory,
            Options(seed=seed, products=products, hours=hours, tape_window=tape_window),
        )
    except (ValueError, FileExistsError) as exc:
        raise UsageError(str(exc)) from exc
    click.echo(
        f"cases site in {directory}: {products} products over {hours} hours, tapes "
        f"{scenario['tapes']['old']} (old) and {scenario['tapes']['current']} (current), "
        f"{scenario['cache_files']} files in the cache; expected outcome in "
        f"{directory / 'scenario.json'}"
    )
