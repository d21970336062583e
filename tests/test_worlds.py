"""runner.worlds: a world command made from an options dataclass."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

from runner.errors import UsageError
from runner.worlds import option, world_command


def _kinds(text: str) -> tuple[str, ...]:
    kinds = tuple(part for part in text.split(",") if part)
    bad = [k for k in kinds if k not in ("eof", "split")]
    if bad:
        raise UsageError(f"unknown kind {bad[0]!r}; choose from eof, split")
    return kinds


@dataclass
class Options:
    seed: int = option(7, "Random seed.")
    share: float = option(0.5, "A share.")
    name: str = option("x", "A name.")
    crashed: bool = option(True, "Crash flag.")
    lag: int | None = option(None, "Lag.", shown_default="1% of --records")
    damage: tuple[str, ...] = option(("eof",), "Damage kinds.", parse=_kinds)
    hidden: int = 64


def _build(directory: Path, options: Options) -> str:
    if options.share > 1:
        raise ValueError("--share is a share between 0 and 1")
    return f"{directory.name}: {options}"


COMMAND = world_command("toy", Options, _build, "Generate a toy site.")


def test_defaults_come_from_the_dataclass(tmp_path: Path) -> None:
    result = CliRunner().invoke(COMMAND, [str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"s: {Options()}"


def test_every_kind_of_option_is_parsed(tmp_path: Path) -> None:
    args = [str(tmp_path / "s"), "--seed", "3", "--share", "0.25", "--name", "y"]
    args += ["--no-crashed", "--lag", "9", "--damage", "eof,split"]
    result = CliRunner().invoke(COMMAND, args)
    assert result.exit_code == 0, result.output
    expected = Options(3, 0.25, "y", False, 9, ("eof", "split"))
    assert result.output.strip() == f"s: {expected}"


def test_help_lists_options_with_their_defaults_and_hides_the_rest() -> None:
    text = CliRunner().invoke(COMMAND, ["--help"]).output
    assert "--seed INTEGER" in text and "[default: 7]" in text
    assert "--crashed / --no-crashed" in text
    assert "[default: 1% of --records]" in text
    assert "--damage TEXT" in text and "[default: eof]" in text
    assert "--hidden" not in text


def test_a_bad_value_is_a_usage_error_naming_the_option(tmp_path: Path) -> None:
    result = CliRunner().invoke(COMMAND, [str(tmp_path / "s"), "--damage", "eof,nope"])
    assert result.exit_code == 2
    assert "--damage" in result.output and "unknown kind 'nope'" in result.output
    result = CliRunner().invoke(COMMAND, [str(tmp_path / "s"), "--share", "2"])
    assert result.exit_code == 2 and "between 0 and 1" in result.output


@dataclass
class Renamed:
    crashed: bool | None = option(
        None, "Crash flag.", shown_default="when damaged", flag_names=("--crashed/--not-crashed",)
    )
    damage: tuple[str, ...] = option((), "Damage kinds.", parse=_kinds, multiple=True)


RENAMED = world_command("renamed", Renamed, lambda d, o: str(o), "Old flag names.")


def test_flag_names_replace_the_derived_ones(tmp_path: Path) -> None:
    text = CliRunner().invoke(RENAMED, ["--help"]).output
    assert "--crashed / --not-crashed" in text and "--no-crashed" not in text
    runs = {
        args: CliRunner().invoke(RENAMED, [str(tmp_path / "s"), *args]).output.strip()
        for args in [(), ("--crashed",), ("--not-crashed",)]
    }
    assert runs[()] == str(Renamed(None))
    assert runs[("--crashed",)] == str(Renamed(True))
    assert runs[("--not-crashed",)] == str(Renamed(False))
    result = CliRunner().invoke(RENAMED, [str(tmp_path / "s"), "--no-crashed"])
    assert result.exit_code == 2


def test_a_multiple_option_repeats_as_if_comma_separated(tmp_path: Path) -> None:
    args = [str(tmp_path / "s"), "--damage", "eof", "--damage", "split"]
    result = CliRunner().invoke(RENAMED, args)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(Renamed(None, ("eof", "split")))
    result = CliRunner().invoke(RENAMED, [str(tmp_path / "s"), "--damage", "eof", "--damage", "x"])
    assert result.exit_code == 2 and "unknown kind 'x'" in result.output
