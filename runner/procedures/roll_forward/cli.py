"""`recover world rollforward DIR`: generate a roll-forward site."""

from __future__ import annotations

from pathlib import Path

import click

from runner.procedures.roll_forward.world import SCHEMAS, Options, build


@click.command("rollforward")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", type=int, default=1, show_default=True, help="random seed")
@click.option(
    "--transactions",
    type=click.IntRange(10),
    default=400,
    show_default=True,
    help="transactions started in the logging cycle",
)
@click.option(
    "--users",
    type=click.IntRange(4),
    default=12,
    show_default=True,
    help="users writing concurrently",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1),
    default=6,
    show_default=True,
    help="transactions open at the same time",
)
@click.option(
    "--files",
    type=click.IntRange(1),
    default=4,
    show_default=True,
    help="about how many log files the set spans",
)
@click.option(
    "--tail",
    type=click.Choice(["checksum", "sequence", "torn", "clean"]),
    default="checksum",
    show_default=True,
    help="how the log ends at the crash",
)
@click.option(
    "--drop-log-file",
    type=click.IntRange(2),
    default=None,
    help="move file K of the set to spare/ (the run must stop and ask for it)",
)
@click.option(
    "--mismatch-stamp",
    type=click.Choice(sorted(SCHEMAS)),
    default=None,
    help="give this database's backup copy a stamp that does not match the log",
)
@click.option(
    "--foreign-backup",
    type=click.Choice(sorted(SCHEMAS)),
    default=None,
    help="mark this database's backup copy as not made by the store utility",
)
@click.option(
    "--rows",
    type=click.IntRange(1),
    default=40,
    show_default=True,
    help="rows per table in the backup copies",
)
@click.option("--no-expected", is_flag=True, help="skip writing expected/ (big sites)")
def world(
    directory: Path,
    seed: int,
    transactions: int,
    users: int,
    concurrency: int,
    files: int,
    tail: str,
    drop_log_file: int | None,
    mismatch_stamp: str | None,
    foreign_backup: str | None,
    rows: int,
    no_expected: bool,
) -> None:
    """Generate a roll-forward site in DIRECTORY (databases, backups, logs, expected)."""
    scenario = build(
        directory,
        Options(
            seed=seed,
            transactions=transactions,
            users=users,
            concurrency=concurrency,
            files=files,
            tail=tail,
            drop_log_file=drop_log_file,
            mismatch_stamp=mismatch_stamp,
            foreign_backup=foreign_backup,
            rows_per_table=rows,
            expected=not no_expected,
        ),
    )
    click.echo(
        f"roll-forward site in {directory}: {scenario['records']:,} log records in "
        f"{len(scenario['files'])} file(s) of set {scenario['log_set']}; "
        "see scenario.json"
    )
