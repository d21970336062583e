"""`recover world NAME DIR`: a click command made from a generator's options.

A world generator describes its knobs once, as a dataclass whose fields carry
their help text (`option(...)`); `world_command` turns that into the command
line, so the options, their defaults and their help are never written twice.

    @dataclass
    class Options:
        seed: int = option(7, "Random seed (same seed, same site).")
        records: int = option(10_000, "Records below the keyed EOF.")
        damage: tuple[str, ...] = option((), "Damage kinds, comma-separated.", parse=kinds)
        memory_mb: int = 64  # no option(): not on the command line

    world = world_command("keyed", Options, build_and_describe, "Generate a keyed-file site.")

Field types map to click types: int, float, str; bool becomes `--name/--no-name`
(or whatever `flag_names` declares, e.g. `("--crashed/--not-crashed",)`);
`X | None` defaults to None; anything else (tuples, datetimes) is read as text
and converted by the field's `parse`, which raises ValueError or UsageError
with a message for the operator. A `multiple` option may be repeated; its
values reach `parse` joined by commas, as if comma-separated.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from runner.errors import RecoverError

O = TypeVar("O")  # noqa: E741 - the options dataclass

_SPEC = "recover.option"  # the dataclass field's metadata key for its _OptionSpec


@dataclasses.dataclass(frozen=True)
class _OptionSpec:
    """How one options field appears on the command line (see `option`)."""

    help: str
    parse: Callable[[str], Any] | None = None
    metavar: str | None = None
    shown_default: str | None = None
    flag_names: tuple[str, ...] | None = None
    multiple: bool = False


def option(
    default: Any,
    help: str,
    *,
    parse: Callable[[str], Any] | None = None,
    metavar: str | None = None,
    shown_default: str | None = None,
    flag_names: tuple[str, ...] | None = None,
    multiple: bool = False,
) -> Any:
    """A dataclass field that is also a `recover world` option.

    `shown_default` is what --help says when the real default is computed
    later (None here, "1% of --records" in words). `flag_names` replaces the
    option's declared names (a command line that predates the dataclass);
    `multiple` lets the option repeat (it needs a `parse`)."""
    if multiple and parse is None:
        raise TypeError("a multiple world option needs a parse function")
    if isinstance(default, list | dict | set):
        raise TypeError("use a tuple or a default_factory-free value for world options")
    spec = _OptionSpec(help, parse, metavar, shown_default, flag_names, multiple)
    return dataclasses.field(default=default, metadata={_SPEC: spec})


def world_command(
    name: str,
    options_type: type[O],
    build: Callable[[Path, O], str],
    help: str,
) -> click.Command:
    """The click command: DIRECTORY plus one option per `option()` field.

    `build(directory, options)` generates the site and returns the line to
    print. Problems it raises as UsageError/ValueError become usage errors."""
    hints = typing.get_type_hints(options_type)
    fields = [f for f in dataclasses.fields(options_type) if _SPEC in f.metadata]  # type: ignore[arg-type]

    def callback(directory: Path, **values: Any) -> None:
        converted: dict[str, Any] = {}
        for field in fields:
            spec: _OptionSpec = field.metadata[_SPEC]
            value = values[field.name]
            if spec.multiple and isinstance(value, tuple):
                value = ",".join(value)
            if spec.parse is not None and isinstance(value, str):
                try:
                    value = spec.parse(value)
                except (ValueError, RecoverError) as exc:
                    message = exc.message if isinstance(exc, RecoverError) else str(exc)
                    raise click.BadParameter(message, param_hint=_flag(field.name)) from exc
            converted[field.name] = value
        try:
            options = options_type(**converted)
            line = build(directory, options)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from exc
        click.echo(line)

    params: list[click.Parameter] = [
        click.Argument(["directory"], type=click.Path(path_type=Path, file_okay=False))
    ]
    params += [_click_option(field, hints[field.name]) for field in fields]
    return click.Command(name, callback=callback, params=params, help=help)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _click_option(field: dataclasses.Field[Any], hint: Any) -> click.Option:
    spec: _OptionSpec = field.metadata[_SPEC]
    base, optional = _unwrap(hint)
    default = field.default
    help_text = spec.help + (f" [default: {spec.shown_default}]" if spec.shown_default else "")
    show_default = spec.shown_default is None and default is not None
    names = [*(spec.flag_names or [_flag(field.name)]), field.name]
    if base is bool and spec.parse is None:
        flag = _flag(field.name)
        return click.Option(
            names if spec.flag_names else [f"{flag}/--no-{flag[2:]}"],
            default=default,
            help=help_text,
            show_default=show_default,
        )
    click_type: Any = base if base in (int, float, str) and spec.parse is None else str
    shown_value = default
    if click_type is str and not isinstance(default, str) and default is not None:
        shown_value = _as_text(default)
    if spec.multiple:
        return click.Option(
            names,
            type=str,
            multiple=True,
            default=tuple(str(shown_value).split(",")) if shown_value else (),
            metavar=spec.metavar,
            help=help_text,
            show_default=show_default and bool(shown_value),
        )
    return click.Option(
        names,
        type=click_type,
        default=shown_value if not optional or default is not None else None,
        metavar=spec.metavar,
        help=help_text,
        show_default=show_default,
    )


def _as_text(value: Any) -> str:
    """How a non-text default is typed on the command line (a tuple as a,b,c)."""
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)


def _unwrap(hint: Any) -> tuple[Any, bool]:
    """(the type inside `X | None`, whether None is allowed)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return (args[0] if len(args) == 1 else str), True
    return hint, False
