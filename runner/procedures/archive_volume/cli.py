"""`recover world archive DIR`: generate an image-archive site with a damaged volume."""

from __future__ import annotations

from pathlib import Path

import click

from runner.errors import UsageError
from runner.procedures.archive_volume.world import WorldOptions, generate

_D = WorldOptions()


def _span(text: str) -> tuple[int, int]:
    try:
        low, _, high = text.partition("-")
        return int(low), int(high or low)
    except ValueError as exc:
        raise UsageError(f"--objects-per-study {text!r} is not MIN-MAX, e.g. 1-40") from exc


@click.command(name="archive")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", type=int, default=_D.seed, show_default=True, help="Random seed.")
@click.option(
    "--studies", type=int, default=_D.studies, show_default=True, help="Number of studies."
)
@click.option(
    "--objects-per-study",
    default=f"{_D.objects_min}-{_D.objects_max}",
    show_default=True,
    help="MIN-MAX objects per study (CT/MR near MAX, CR/DX few).",
)
@click.option(
    "--volumes",
    type=int,
    default=_D.volumes,
    show_default=True,
    help="Archive volumes VOL0001..; the last one is open, the others closed.",
)
@click.option(
    "--volumes-per-carrier",
    type=int,
    default=_D.volumes_per_carrier,
    show_default=True,
    help="Volumes sharing one carrier (platter sides).",
)
@click.option(
    "--damaged",
    default=_D.damaged,
    show_default=True,
    help="volume_ref of the damaged (closed, offline) volume.",
)
@click.option(
    "--copy-fraction",
    type=float,
    default=_D.copy_fraction,
    show_default=True,
    help="Share of studies with a second copy of every object on another volume.",
)
@click.option(
    "--partial-copy-fraction",
    type=float,
    default=_D.partial_copy_fraction,
    show_default=True,
    help="Share of studies with second copies of some objects.",
)
@click.option(
    "--cached-fraction",
    type=float,
    default=_D.cached_fraction,
    show_default=True,
    help="Share of studies with (some) objects in the cache.",
)
@click.option(
    "--damage-ranges",
    type=int,
    default=_D.damage_ranges,
    show_default=True,
    help="Number of unreadable ordinal ranges on the damaged volume.",
)
@click.option(
    "--damaged-fraction",
    type=float,
    default=_D.damaged_fraction,
    show_default=True,
    help="Share of the damaged volume's blocks that are unreadable.",
)
@click.option(
    "--damage-to-end/--no-damage-to-end",
    default=_D.damage_to_end,
    show_default=True,
    help="Let the last unreadable range run to the volume's end.",
)
@click.option(
    "--block-size",
    type=int,
    default=_D.block_size,
    show_default=True,
    help="Bytes per volume block.",
)
@click.option(
    "--media",
    type=click.Choice(["all", "none"]),
    default=_D.media,
    show_default=True,
    help="'none' writes only the catalog (catalog benchmarks).",
)
def world_command(directory: Path, objects_per_study: str, **options: object) -> None:
    """Generate an image-archive site in DIRECTORY (new or empty), deterministic from --seed.

    It holds catalog.sqlite, volumes/VOLnnnn.vol, cache/ and scenario.json
    (the damaged volume, its unreadable ranges and the expected outcome).

    \b
    Examples:
      recover world archive sites/archive
      recover world archive /tmp/big --studies 100000 --seed 7 --media none
    """
    low, high = _span(objects_per_study)
    scenario = generate(directory, WorldOptions(objects_min=low, objects_max=high, **options))  # type: ignore[arg-type]
    expected = scenario["expected"]
    click.echo(
        f"archive site written to {directory}: damaged volume {scenario['damaged_volume']} "
        f"({scenario['unreadable_blocks']:,} unreadable block(s) in "
        f"{len(scenario['unreadable_ranges'])} range(s)); {expected['studies_affected']:,} "
        f"study(ies) / {expected['objects_affected']:,} object(s) affected, "
        f"{expected['recoverable']:,} recoverable, {expected['unrecoverable']:,} unrecoverable"
    )
    click.echo(f"expected outcome: {directory / 'scenario.json'}")
