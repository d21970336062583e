"""Static validation: every problem in a playbook, each at FILE:LINE:COL.

Runs in layers, collecting rather than stopping: YAML syntax, duplicate keys,
the core schema, each step's arguments against its action's schema (after
rendering expressions with the params' defaults), then meaning: unique step
ids, known actions, declared params, param types, `when:` references, site
paths, and each procedure's own cross-step rules.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.contract import Registry, StepView
from runner.errors import PlaybookError, SiteError
from runner.playbook.diagnostics import Diagnostic
from runner.playbook.model import Param, Playbook, Step, type_matches
from runner.playbook.schema import core_schema
from runner.playbook.template import (
    TemplateProblem,
    has_template,
    referenced_names,
    render_value,
)
from runner.playbook.yamlpos import Mark, PosDict, YamlSyntaxError, load_positioned, mark_for_path
from runner.site import safe_relpath

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator, FormatChecker, ValidationError

_STEP_REF = re.compile(r"\bsteps\.([A-Za-z_][A-Za-z0-9_]*)")
RESERVED_NAMES = {"steps"}


def _is_site_path(value: object) -> bool:
    if isinstance(value, str) and not has_template(value):
        safe_relpath(value)
    return True


@functools.cache
def _formats() -> FormatChecker:
    """The format checker, with "site-path"; jsonschema is imported on first use
    (about 30 ms that `--help`, `status` and `world` do not need)."""
    from jsonschema import FormatChecker

    checker = FormatChecker()
    checker.checks("site-path", raises=SiteError)(_is_site_path)
    return checker


def _validator(schema: dict[str, Any]) -> Draft202012Validator:
    """One validator per schema object (each action's schema is one object for
    the whole registry), not one per step: building it is not free."""
    known = _VALIDATORS.get(id(schema))
    if known is not None and known[0] is schema:
        return known[1]
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema, format_checker=_formats())
    if len(_VALIDATORS) >= 1024:  # a long-lived process loading many registries
        _VALIDATORS.clear()
    _VALIDATORS[id(schema)] = (schema, validator)  # the schema kept: its id stays its own
    return validator


_VALIDATORS: dict[int, tuple[dict[str, Any], Draft202012Validator]] = {}


class _Collector:
    """The problems found so far, and what every check needs: the file, its
    positioned tree and the registry of actions."""

    def __init__(self, file: str, raw: Any, registry: Registry) -> None:
        self.file = file
        self.raw = raw
        self.registry = registry
        self.items: list[Diagnostic] = []

    def add(
        self,
        path: tuple[str | int, ...],
        message: str,
        fix: str | None = None,
        *,
        key: bool = False,
    ) -> None:
        mark = mark_for_path(self.raw, path, key=key)
        self.items.append(Diagnostic(self.file, mark.line, mark.col, message, path, fix))

    def at(
        self, mark: Mark, message: str, fix: str | None = None, path: tuple[str | int, ...] = ()
    ) -> None:
        self.items.append(Diagnostic(self.file, mark.line, mark.col, message, path, fix))


def load_playbook(path: Path, registry: Registry) -> Playbook:
    """Load and validate; raise PlaybookError carrying every Diagnostic."""
    playbook, diagnostics = check_playbook(path, registry)
    if diagnostics or playbook is None:
        raise PlaybookError(diagnostics)
    return playbook


def check_playbook(path: Path, registry: Registry) -> tuple[Playbook | None, list[Diagnostic]]:
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, [
            Diagnostic(
                file,
                1,
                1,
                "playbook file not found",
                fix="check the path; playbooks usually live in playbooks/",
            )
        ]
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Diagnostic(file, 1, 1, f"cannot read playbook: {exc}")]
    try:
        raw, problems = load_positioned(text)
    except YamlSyntaxError as exc:
        p = exc.problem
        return None, [Diagnostic(file, p.mark.line, p.mark.col, p.message, p.path, p.fix)]
    out = _Collector(file, raw, registry)
    for problem in problems:
        out.at(problem.mark, problem.message, problem.fix, problem.path)
    if not isinstance(raw, PosDict):
        out.at(
            Mark(1, 1),
            "a playbook must be a YAML mapping (version, name, steps, ...)",
            "start from one of the shipped playbooks in playbooks/",
        )
        return None, out.items
    _check_core_schema(raw, out)
    params = _check_params(raw, out)
    steps = _check_steps(raw, params, out)
    _check_expressions(raw, params, steps, out)
    _check_site(raw, out)
    if out.items:
        return None, sorted(out.items, key=lambda d: (d.line, d.col))
    site = {k: str(v) for k, v in raw.get("site", {}).items()}
    safety = raw.get("safety", {})
    return Playbook(
        path=path.resolve(),
        name=raw["name"],
        description=raw.get("description", ""),
        params=params,
        site=site,
        allow_loss=dict(safety.get("allow_loss", {})),
        confirm=list(safety.get("confirm", [])),
        steps=steps,
        text=text,
        raw=raw,
    ), []


# -- schema ----------------------------------------------------------------


def _check_core_schema(raw: PosDict, out: _Collector) -> None:
    validator = _validator(core_schema())
    for error in sorted(validator.iter_errors(raw), key=lambda e: list(map(str, e.path))):
        _report_schema_error(error, (), _allowed_keys(error), out)


def _allowed_keys(error: ValidationError) -> list[str]:
    schema = error.schema if isinstance(error.schema, dict) else {}
    return sorted(schema.get("properties", {}))


def _report_schema_error(
    error: ValidationError, prefix: tuple[str | int, ...], allowed: list[str], out: _Collector
) -> None:
    if error.validator in ("anyOf", "oneOf") and error.context:
        from jsonschema.exceptions import best_match

        error = best_match(error.context)
    path = prefix + tuple(error.absolute_path)
    if "propertyNames" in error.schema_path and isinstance(error.instance, str):
        name = error.instance
        out.add(
            (*path, name),
            f"name {name!r} is not allowed here: {error.message}",
            _fix_for(error),
            key=True,
        )
        return
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = set(allowed)
        for key in error.instance:
            if key not in known:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                fix = (
                    f"did you mean {close[0]!r}?"
                    if close
                    else ("allowed keys: " + ", ".join(allowed) if allowed else None)
                )
                out.add((*path, key), f"unknown key {key!r}", fix, key=True)
        return
    if error.validator == "required":
        missing = re.search(r"'([^']+)' is a required property", error.message)
        name = missing.group(1) if missing else "?"
        out.add(path, f"missing required key {name!r}", f"add `{name}:` here")
        return
    if error.validator == "type":
        fix = f"write a value of type {error.validator_value}"
        if isinstance(error.instance, bool) and "string" in str(error.validator_value):
            fix = "put the value in quotes: YAML reads unquoted yes/no/on/off as booleans"
        out.add(path, f"expected {error.validator_value}, got {_show(error.instance)}", fix)
        return
    if error.validator == "format" and error.validator_value == "site-path":
        cause = error.cause
        out.add(
            path,
            str(cause.message if isinstance(cause, SiteError) else error.message),
            "use a path relative to the site, without '..' or a leading '/'",
        )
        return
    out.add(path, error.message, _fix_for(error))


def _fix_for(error: ValidationError) -> str:
    rule, value = error.validator, error.validator_value
    if rule == "enum":
        return "use one of: " + ", ".join(map(str, value))
    if rule == "const":
        return f"write {value!r}"
    if rule == "pattern":
        return f"the value must match {value}"
    if rule in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return f"{rule} is {value}"
    if rule == "minItems":
        return f"give at least {value} item(s)"
    if rule == "maxItems":
        return f"give at most {value} item(s)"
    if rule == "uniqueItems":
        return "remove the repeated item"
    if rule == "minLength":
        return "write a non-empty value" if value == 1 else f"write at least {value} characters"
    if rule == "maxLength":
        return f"write at most {value} characters"
    if rule in ("minProperties", "maxProperties"):
        return f"{rule} is {value}"
    return "see the allowed values with `recover schema` (or docs/playbooks.md)"


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if value is None:
        return "null"
    kinds = (
        (str, "string"),
        (int, "integer"),
        (float, "number"),
        (list, "list"),
        (dict, "mapping"),
    )
    kind = next((name for cls, name in kinds if isinstance(value, cls)), type(value).__name__)
    return f"{kind} {value!r}" if kind in ("string", "integer", "number") else kind


# -- params, steps, expressions --------------------------------------------


def _check_params(raw: PosDict, out: _Collector) -> dict[str, Param]:
    params: dict[str, Param] = {}
    declared = raw.get("params")
    if not isinstance(declared, dict):
        return params
    for name, spec in declared.items():
        if not isinstance(spec, dict) or spec.get("type") not in (
            "string",
            "integer",
            "number",
            "boolean",
            "list",
            "object",
        ):
            continue  # the schema already reported it
        if name in RESERVED_NAMES:
            out.add(
                ("params", name), f"param name {name!r} is reserved", "rename the param", key=True
            )
            continue
        has_default = "default" in spec
        if has_default and not type_matches(spec["type"], spec["default"]):
            out.add(
                ("params", name, "default"),
                f"default of param {name!r} is {_show(spec['default'])}, "
                f"but the param is declared {spec['type']}",
                f"give a {spec['type']} default or change the type",
            )
        params[name] = Param(
            name, spec["type"], spec.get("default"), has_default, spec.get("description", "")
        )
    return params


def _check_steps(raw: PosDict, params: dict[str, Param], out: _Collector) -> list[Step]:
    steps: list[Step] = []
    raw_steps = raw.get("steps")
    if not isinstance(raw_steps, list):
        return steps
    registry = out.registry
    seen: dict[str, int] = {}
    views: list[StepView] = []
    defaults = {name: p.default for name, p in params.items() if p.has_default}
    for index, spec in enumerate(raw_steps):
        if not isinstance(spec, dict):
            continue
        when = spec.get("when")
        if isinstance(when, str) and not has_template(when):
            out.add(
                ("steps", index, "when"),
                f"`when` is plain text ({when!r}), which is always true",
                f'write an expression, e.g. when: "{{{{ {when} }}}}", or true/false',
            )
        raw_id, action = spec.get("id"), spec.get("action")
        good_id = isinstance(raw_id, str)  # a bad id is the schema's to report
        step_id = raw_id if isinstance(raw_id, str) else ""
        if good_id and step_id in seen:
            out.add(
                ("steps", index, "id"),
                f"duplicate step id {step_id!r} (first used by step {seen[step_id] + 1})",
                "give every step its own id",
            )
        if good_id:
            seen.setdefault(step_id, index)
        if not isinstance(action, str):
            continue
        if action not in registry:
            close = difflib.get_close_matches(action, list(registry.actions), n=1, cutoff=0.6)
            out.add(
                ("steps", index, "action"),
                f"unknown action {action!r}",
                f"did you mean {close[0]!r}?"
                if close
                else "list the actions with `recover schema` or see docs/playbooks.md",
            )
            continue
        args = spec.get("args", {})
        rendered = _check_args(index, action, args, defaults, out) if isinstance(args, dict) else {}
        if not good_id:
            continue
        # Cross-step rules see the arguments as the defaults render them, so that a
        # literal "VOL0002" and "{{ volume }}" (default VOL0002) name the same volume.
        views.append(StepView(index, step_id, action, rendered))
        steps.append(
            Step(
                index,
                step_id,
                action,
                args if isinstance(args, dict) else {},
                spec.get("description", ""),
                spec.get("when"),
            )
        )
    for procedure in registry.procedures:
        if procedure.validate_steps is not None:
            mine = [v for v in views if v.action.split(".")[0] == procedure.name]
            for finding in procedure.validate_steps(mine):
                out.add(finding.path, finding.message, finding.fix)
    return steps


def check_with_params(
    playbook: Playbook, params: dict[str, Any], registry: Registry
) -> list[Diagnostic]:
    """Every step's arguments and `when` as they will be with these param values.

    `validate` checks them with the params' defaults; `plan` and `run` check
    them again with the values actually given, so that a bad `--param` is
    reported before the first step runs rather than when its step comes.
    Values that depend on earlier steps' outputs are left for run time.
    """
    out = _Collector(str(playbook.path), playbook.raw, registry)
    for step in playbook.steps:
        base: tuple[str | int, ...] = ("steps", step.index)
        targets: list[tuple[tuple[str | int, ...], Any]] = [((*base, "when"), step.when)]
        targets += list(_walk_strings(step.args, (*base, "args")))
        for path, text in targets:
            if has_template(text) and not _STEP_REF.search(text):
                try:
                    render_value(text, params)
                except TemplateProblem as exc:
                    out.add(path, f"expression fails: {exc}", "fix the {{ ... }} expression")
        _check_args(step.index, step.action, step.args, params, out)
    return sorted(out.items, key=lambda d: (d.line, d.col))


def _check_args(
    index: int, action: str, args: dict[str, Any], defaults: dict[str, Any], out: _Collector
) -> dict[str, Any]:
    """Validate args as they will be after rendering with the params' defaults;
    returns them so rendered (what is only known later left out)."""
    rendered = _render_leniently(_without_step_refs(args), defaults)
    schema = out.registry.action_schema(action)
    validator = _validator(schema)
    for error in validator.iter_errors(rendered):
        if error.validator == "required" and _written(args, error):
            continue  # its value is only known later, or its expression is reported
        _report_schema_error(error, ("steps", index, "args"), _allowed_keys(error), out)
    for path, number in _huge_integers(rendered, ("steps", index, "args")):
        out.add(
            path,
            f"{number} does not fit in SQLite's 64-bit integers "
            f"({SQLITE_MIN_INT} to {SQLITE_MAX_INT})",
            "give a smaller number",
        )
    return dict(rendered)


SQLITE_MAX_INT = 2**63 - 1
SQLITE_MIN_INT = -(2**63)


def _huge_integers(value: Any, path: tuple[str | int, ...]) -> Iterator[tuple[Any, int]]:
    """Integers no catalog can store, wherever they are in a step's arguments."""
    if isinstance(value, int) and not isinstance(value, bool):
        if not SQLITE_MIN_INT <= value <= SQLITE_MAX_INT:
            yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _huge_integers(item, (*path, key))
    elif isinstance(value, list):
        for position, item in enumerate(value):
            yield from _huge_integers(item, (*path, position))


def _written(args: dict[str, Any], error: ValidationError) -> bool:
    """Whether the key a `required` error misses is in the playbook after all
    (rendering left it out: it fails, or it depends on an earlier step)."""
    missing = re.search(r"'([^']+)' is a required property", error.message)
    node: Any = args
    for part in error.absolute_path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return False
    return missing is not None and isinstance(node, dict) and missing.group(1) in node


_UNKNOWN = object()


def _render_leniently(value: Any, variables: dict[str, Any]) -> Any:
    """Render what renders; drop what does not (reported by _check_expressions),
    so one bad expression does not hide the other arguments' problems."""
    if isinstance(value, str) and has_template(value):
        try:
            return render_value(value, variables)
        except TemplateProblem:
            return _UNKNOWN
    if isinstance(value, dict):
        items = {k: _render_leniently(v, variables) for k, v in value.items()}
        return {k: v for k, v in items.items() if v is not _UNKNOWN}
    if isinstance(value, list):
        return [v for v in (_render_leniently(i, variables) for i in value) if v is not _UNKNOWN]
    return value


def known_args(playbook: Playbook, params: dict[str, Any]) -> list[tuple[Step, dict[str, Any]]]:
    """Each step's arguments as far as `params` tell them (what depends on an
    earlier step's outputs, or fails to render, left out)."""
    return [
        (step, _render_leniently(_without_step_refs(step.args), params)) for step in playbook.steps
    ]


def named_paths(playbook: Playbook, known: list[tuple[Step, dict[str, Any]]]) -> list[str]:
    """Every plain relative path the playbook names (its site locations and its
    steps' string arguments as `known_args` rendered them), to recognise its site."""
    found = list(playbook.locations().values())
    for _, args in known:
        found += [text for _, text in _walk_strings(args, ())]
    return [
        text
        for text in dict.fromkeys(found)
        if isinstance(text, str) and text and not text.startswith("/") and "\n" not in text
    ]


def _without_step_refs(value: Any) -> Any:
    """Drop values that depend on earlier steps' outputs: only known at run time."""
    if isinstance(value, str) and has_template(value) and _STEP_REF.search(value):
        return None
    if isinstance(value, dict):
        return {
            k: _without_step_refs(v)
            for k, v in value.items()
            if not (isinstance(v, str) and has_template(v) and _STEP_REF.search(v))
        }
    if isinstance(value, list):
        return [_without_step_refs(v) for v in value]
    return value


def _walk_strings(
    value: Any, path: tuple[str | int, ...]
) -> Iterator[tuple[tuple[str | int, ...], str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk_strings(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk_strings(item, (*path, index))


def _check_expressions(
    raw: PosDict, params: dict[str, Param], steps: list[Step], out: _Collector
) -> None:
    defaults = {name: p.default for name, p in params.items() if p.has_default}
    step_index = {s.id: s.index for s in steps}
    sections: list[tuple[tuple[str | int, ...], Any]] = [
        (("site",), raw.get("site")),
        (("safety",), raw.get("safety")),
    ]
    raw_steps = raw.get("steps")
    for index, spec in enumerate(raw_steps if isinstance(raw_steps, list) else []):
        if isinstance(spec, dict):
            sections.append((("steps", index), {k: spec[k] for k in ("args", "when") if k in spec}))
    for base, value in sections:
        for path, text in _walk_strings(value, base):
            if not has_template(text):
                continue
            try:
                names = referenced_names(text)
            except TemplateProblem as exc:
                out.add(path, f"bad expression: {exc}", "fix the {{ ... }} expression")
                continue
            for name in sorted(names - set(params) - RESERVED_NAMES):
                close = difflib.get_close_matches(name, list(params), n=1)
                out.add(
                    path,
                    f"param {name!r} is used but not declared",
                    f"did you mean {close[0]!r}?"
                    if close
                    else f"declare it under params: ({name}: {{type: string}})",
                )
            refs = _STEP_REF.findall(text)
            in_step = base[0] == "steps"
            for ref in refs:
                here = int(base[1]) if in_step else -1
                if ref not in step_index or not in_step or step_index[ref] >= here:
                    out.add(
                        path,
                        f"`steps.{ref}` does not name an earlier step",
                        "refer only to steps that come before this one",
                    )
            if refs or names - set(defaults):
                continue  # values only known at run time
            try:
                render_value(text, defaults)
            except TemplateProblem as exc:
                out.add(path, f"expression fails: {exc}", "fix the {{ ... }} expression")


def _check_site(raw: PosDict, out: _Collector) -> None:
    site = raw.get("site")
    if not isinstance(site, dict):
        return
    for key, value in site.items():
        if key == "root" or not isinstance(value, str) or has_template(value):
            continue
        try:
            safe_relpath(value, what=f"site.{key}")
        except SiteError as exc:
            out.add(("site", key), exc.message, "use a path relative to the site root")
