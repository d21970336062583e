"""`recover world keyed DIR ...`: generate a keyed-file site with crash damage."""

from __future__ import annotations

from pathlib import Path

import click

from runner.procedures.keyed_file.world import DAMAGE_KINDS, WorldSpec, generate


def _damage(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    kinds: list[str] = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if part == "all":
                kinds.extend(DAMAGE_KINDS)
            elif part in DAMAGE_KINDS:
                kinds.append(part)
            elif part:
                raise click.BadParameter(
                    f"{part!r} is not a damage kind; choose from {', '.join(DAMAGE_KINDS)} or all"
                )
    return tuple(dict.fromkeys(kinds))


@click.command(name="keyed")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option("--seed", default=1, show_default=True, help="Random seed (same seed, same site).")
@click.option(
    "--records",
    default=10_000,
    show_default=True,
    help="Records below the keyed EOF, deleted ones included.",
)
@click.option(
    "--keys", default=3, show_default=True, help="Number of keys (1 primary + alternates)."
)
@click.option(
    "--damage",
    multiple=True,
    callback=_damage,
    metavar="KIND",
    help=f"Crash damage to leave: {', '.join(DAMAGE_KINDS)} or all; repeat or "
    "comma-separate to combine.",
)
@click.option(
    "--key-lengths",
    metavar="N,N,...",
    help="Bytes per key, comma-separated [default: 10,12,8,...].",
)
@click.option("--name", default="customers", show_default=True, help="File name stem.")
@click.option("--record-length", type=int, help="Record payload bytes [default: keys + 16, >= 64].")
@click.option(
    "--sectors-per-block", default=8, show_default=True, help="Key block size in sectors."
)
@click.option("--fill-percent", default=80, show_default=True, help="Key block fill when built.")
@click.option(
    "--deleted-percent",
    default=5.0,
    show_default=True,
    help="Share of records deleted before the crash.",
)
@click.option("--eof-behind", type=int, help="eof: records the FS EOF lags [default: 1%].")
@click.option(
    "--dangling", type=int, help="dangling: key values per key past the EOF [default: 0.5%]."
)
@click.option("--missing", type=int, help="missing: records missing key values [default: 0.5%].")
@click.option(
    "--crashed/--not-crashed", default=None, help="Crash flag [default: set when there is damage]."
)
def world(
    directory: Path,
    seed: int,
    records: int,
    keys: int,
    damage: tuple[str, ...],
    key_lengths: str | None,
    name: str,
    record_length: int | None,
    sectors_per_block: int,
    fill_percent: int,
    deleted_percent: float,
    eof_behind: int | None,
    dangling: int | None,
    missing: int | None,
    crashed: bool | None,
) -> None:
    """Generate a keyed-file site (data file + key file) with crash damage.

    Writes DIRECTORY/files/NAME.dat, NAME.key and scenario.json (the expected
    findings and figures of verify, repair, count and reload).

    \b
    Example:
      recover world keyed sites/keyed --seed 7 --records 100000 --damage eof,dangling,split,missing
    """
    if not 1 <= fill_percent <= 100 or not 0 <= deleted_percent <= 100:
        raise click.BadParameter("percentages must be within 0..100")
    try:
        lengths = tuple(int(x) for x in key_lengths.split(",")) if key_lengths else ()
    except ValueError:
        raise click.BadParameter(
            "give whole numbers, e.g. 42,42", param_hint="--key-lengths"
        ) from None
    spec = WorldSpec(
        key_lengths=lengths,
        records=records,
        keys=keys,
        damage=damage,
        seed=seed,
        name=name,
        record_length=record_length,
        sectors_per_block=sectors_per_block,
        fill_percent=fill_percent,
        deleted_percent=deleted_percent,
        eof_behind=eof_behind,
        dangling=dangling,
        missing=missing,
        crashed=crashed,
    )
    scenario = generate(directory, spec)
    expected = scenario["expected"]
    click.echo(
        f"keyed site in {directory}: {scenario['data_file']} + {scenario['key_file']}, "
        f"{records:,} records ({expected['valid_records']:,} valid), {keys} key(s), "
        f"damage: {', '.join(scenario['damage']) or 'none'}"
    )
