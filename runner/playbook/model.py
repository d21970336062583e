"""The typed playbook model, and parameter typing for --param overrides."""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.errors import UsageError
from runner.playbook.yamlpos import YamlSyntaxError, load_positioned, plain

PARAM_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "list": (list,),
    "object": (dict,),
}


def type_matches(kind: str, value: Any) -> bool:
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, PARAM_TYPES[kind])


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    default: Any = None
    has_default: bool = False
    description: str = ""


@dataclass(frozen=True)
class Step:
    index: int
    id: str
    action: str
    args: dict[str, Any]
    description: str = ""
    when: Any = None


@dataclass
class Playbook:
    path: Path
    name: str
    description: str
    params: dict[str, Param]
    site: dict[str, str]
    allow_loss: dict[str, Any]
    confirm: list[str]
    steps: list[Step]
    text: str
    raw: Any = field(repr=False, default=None)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    def site_root(self) -> Path | None:
        root = self.site.get("root")
        return (self.path.parent / root).resolve() if root else None

    def locations(self) -> dict[str, str]:
        return {k: v for k, v in self.site.items() if k != "root"}

    def resolve_params(
        self, overrides: dict[str, str], typed: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Defaults overlaid with typed values (a params file, a saved plan), then
        with --param texts converted to each param's type."""
        values: dict[str, Any] = {}
        for name, value in (typed or {}).items():
            values[name] = check_typed(self.param_named(name, "--params-file"), value)
        for name, raw in overrides.items():
            values[name] = convert_param(self.param_named(name, "--param"), raw)
        for name, param in self.params.items():
            if name in values:
                continue
            if not param.has_default:
                raise UsageError(
                    f"param {name!r} has no default and was not given",
                    fix=f"add --param {name}=VALUE",
                )
            values[name] = param.default
        return values

    def param_named(self, name: str, source: str) -> Param:
        """The declared param, or a usage error with a did-you-mean naming `source`."""
        if name in self.params:
            return self.params[name]
        close = difflib.get_close_matches(name, self.params, n=1)
        hint = (
            f"did you mean {close[0]!r}?"
            if close
            else ("declared params: " + (", ".join(sorted(self.params)) or "none"))
        )
        raise UsageError(
            f"{source} {name}: the playbook declares no such param; {hint}",
            fix="use a param from the playbook's params: section",
        )


def check_typed(param: Param, value: Any, source: str = "param") -> Any:
    """A value that arrived typed (YAML or JSON) checked against the param's type."""
    if param.type == "number" and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not type_matches(param.type, value):
        shown = repr(value)
        shown = shown if len(shown) <= 60 else f"{shown[:60]}... ({len(shown):,} characters)"
        hint = " (quote it to make it text)" if param.type == "string" else ""
        raise UsageError(
            f"{source} {param.name}: expected {param.type}, got {shown}{hint}",
            fix=f"give {param.name} a value of type {param.type} in the file",
        )
    return value


def convert_param(param: Param, raw: str) -> Any:
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError as exc:
        # The shell passed bytes that are not UTF-8; Python kept them as
        # surrogates, which no catalog or report could store.
        raise UsageError(
            f"--param {param.name}: the value is not valid UTF-8 text "
            f"(byte 0x{ord(raw[exc.start]) & 0xFF:02x} at position {exc.start})",
            fix="give the value as UTF-8 text (check the terminal's locale, e.g. LANG=C.UTF-8)",
        ) from None
    if "\x00" in raw:
        raise UsageError(
            f"--param {param.name}: the value contains a NUL byte, which no file name, "
            "catalog or report can hold",
            fix="give the value without the NUL byte",
        )
    if param.type == "string":
        return raw
    try:
        value = plain(load_positioned(raw)[0])
    except YamlSyntaxError as exc:
        raise UsageError(
            f"--param {param.name}: {_short(raw)} does not parse: {exc.problem.message}",
            fix=_example(param.type, param.name),
        ) from exc
    if param.type == "number" and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not type_matches(param.type, value):
        raise UsageError(
            f"--param {param.name}: expected {param.type}, got {_short(raw)}",
            fix=_example(param.type, param.name),
        )
    return value


def _short(raw: str, limit: int = 60) -> str:
    """A value as quoted in a message: whole if short, else its start and its length."""
    if len(raw) <= limit:
        return repr(raw)
    return f"{raw[:limit]!r}... ({len(raw):,} characters)"


def _example(kind: str, name: str) -> str:
    return {
        "integer": f"--param {name}=42",
        "number": f"--param {name}=1.5",
        "boolean": f"--param {name}=true",
        "list": f"--param '{name}=[1, 2]'",
        "object": f"--param '{name}={{a: 1}}'",
    }.get(kind, f"--param {name}=VALUE")


def params_fingerprint(values: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()
