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

_HELP = "recover.help"
_PARSE = "recover.parse"
_METAVAR = "recover.metavar"
_SHOWN_DEFAULT = "recover.shown_default"
_FLAG_NAMES = "recover.flag_names"
_MULTIPLE = "recover.multiple"


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
    metadata = {
        _HELP: help,
        _PARSE: parse,
        _METAVAR: metavar,
        _SHOWN_DEFAULT: shown_default,
        _FLAG_NAMES: flag_names,
        _MULTIPLE: multiple,
    }
    if isinstance(default, list | dict | set):
        raise TypeError("use a tuple or a default_factory-free value for world options")
    return dataclasses.field(default=default, metadata=metadata)


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
    fields = [f for f in dataclasses.fields(options_type) if _HELP in f.metadata]  # type: ignore[arg-type]

    def callback(directory: Path, **values: Any) -> None:
        converted: dict[str, Any] = {}
        for field in fields:
            value = values[field.name]
            parse = field.metadata[_PARSE]
            if field.metadata.get(_MULTIPLE) and isinstance(value, tuple):
                value = ",".join(value)
            if parse is not None and isinstance(value, str):
                try:
                    value = parse(value)
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
    meta = field.metadata
    base, optional = _unwrap(hint)
    default = field.default
    shown = meta[_SHOWN_DEFAULT]
    help_text = meta[_HELP] + (f" [default: {shown}]" if shown else "")
    show_default = shown is None and default is not None
    names = list(meta.get(_FLAG_NAMES) or ())
    if base is bool and meta[_PARSE] is None:
        flag = _flag(field.name)
        return click.Option(
            [*names, field.name] if names else [f"{flag}/--no-{flag[2:]}"],
            default=default,
            help=help_text,
            show_default=show_default,
        )
    click_type: Any = base if base in (int, float, str) and meta[_PARSE] is None else str
    shown_value = default
    if click_type is str and not isinstance(default, str) and default is not None:
        shown_value = _as_text(default)
    if meta.get(_MULTIPLE):
        return click.Option(
            [*(names or [_flag(field.name)]), field.name],
            type=str,
            multiple=True,
            default=tuple(str(shown_value).split(",")) if shown_value else (),
            metavar=meta[_METAVAR],
            help=help_text,
            show_default=show_default and bool(shown_value),
        )
    return click.Option(
        [*(names or [_flag(field.name)]), field.name],
        type=click_type,
        default=shown_value if not optional or default is not None else None,
        metavar=meta[_METAVAR],
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
