"""`recover world pools DIR`: generate a repository site for the pool procedure."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from runner.clock import parse_moment
from runner.errors import UsageError
from runner.procedures.pool_containers.world import NOW, Options, build


def _moment(text: str | None, name: str) -> datetime | None:
    return None if text is None else parse_moment(text, f"{name} {text!r}")


@click.command()
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option("--seed", default=7, show_default=True, help="Random seed (same seed, same site).")
@click.option("--elements", default=60, show_default=True, help="Number of elements.")
@click.option(
    "--damaged",
    default=0.1,
    show_default=True,
    help="Share of elements that are damaged (at least one per category).",
)
@click.option(
    "--cleartext",
    default=0.05,
    show_default=True,
    help="Share of healthy versions that also have a cleartext copy.",
)
@click.option(
    "--now",
    "now_text",
    default=NOW.isoformat(),
    show_default=True,
    help="The repository's present (pin the run with RECOVER_NOW to the same value).",
)
@click.option(
    "--window",
    "window_text",
    default=None,
    help="Start of the allowed-data-loss window the scenario assumes "
    "[default: yesterday 00:00 of --now].",
)
def world(
    directory: Path,
    seed: int,
    elements: int,
    damaged: float,
    cleartext: float,
    now_text: str,
    window_text: str | None,
) -> None:
    """A repository whose database and pools were restored from backups of different ages.

    Identical, superset and subset alternates; elements rebuildable only from
    other type managers or cleartext copies; versions truly lost, created
    before and after the window; a branch that would lose all its versions
    above 0; a few corrupt containers. scenario.json states the expected outcome.

    \b
    Example:
      recover world pools sites/pools --seed 7 --elements 500
    """
    now = _moment(now_text, "--now") or NOW
    if not 0 <= damaged <= 1 or not 0 <= cleartext <= 1:
        raise UsageError("--damaged and --cleartext are shares between 0 and 1")
    opts = Options(seed, elements, damaged, now, _moment(window_text, "--window"), cleartext)
    try:
        scenario = build(directory, opts)
    except (ValueError, FileExistsError) as exc:
        raise UsageError(str(exc)) from exc
    fix = scenario["expected"]["fix"]
    click.echo(
        f"pools site in {directory}: {elements} elements, {scenario['pool_files']} pool files, "
        f"{fix['missing']} missing containers; window since {scenario['window']}; "
        f"expected outcome in {directory / 'scenario.json'}"
    )
