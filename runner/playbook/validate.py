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
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.contract import Output, Registry, StepView
from runner.errors import PlaybookError, SiteError
from runner.playbook.diagnostics import Diagnostic, code_frame
from runner.playbook.model import PARAM_TYPES, Param, Playbook, Step, type_matches
from runner.playbook.quickcheck import FormatTest, is_valid
from runner.playbook.schema import core_schema
from runner.playbook.template import (
    TemplateProblem,
    filter_names,
    has_template,
    jinja_tests,
    referenced_names,
    render_value,
)
from runner.playbook.yamlpos import Mark, PosDict, YamlSyntaxError, load_positioned, mark_for_path
from runner.site import safe_relpath

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator, FormatChecker, ValidationError

_STEP_REF = re.compile(r"\bsteps\.([A-Za-z_][A-Za-z0-9_]*)")
STEP_REF = _STEP_REF  # what marks a value known only once earlier steps ran
RESERVED_NAMES = {"steps"}


#: the longest file name (in bytes) the file systems the runner serves take
NAME_MAX = 255


def _is_site_path(value: object) -> bool:
    if isinstance(value, str) and not has_template(value):
        for part in safe_relpath(value).parts:  # refuses what no file name can hold
            if (size := len(os.fsencode(part))) > NAME_MAX:
                raise SiteError(
                    f"path {value[:60]!r}... has a name of {size:,} bytes, longer than a "
                    f"file system takes ({NAME_MAX})",
                    fix=f"give names of at most {NAME_MAX} bytes",
                )
    return True


#: the formats the schemas use beyond jsonschema's own, for it and for quickcheck
FORMATS: dict[str, FormatTest] = {"site-path": (_is_site_path, SiteError)}


@functools.cache
def _formats() -> FormatChecker:
    """The format checker, with FORMATS; jsonschema is imported on first use
    (about 70 ms that `--help`, `status`, `world` and a valid playbook's
    `validate` do not need: quickcheck answers those)."""
    from jsonschema import FormatChecker

    checker = FormatChecker()
    for name, (test, raises) in FORMATS.items():
        checker.checks(name, raises=raises)(test)
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

    def __init__(self, file: str, raw: Any, registry: Registry, text: str = "") -> None:
        self.file = file
        self.raw = raw
        self.lines = text.splitlines()
        self.registry = registry
        self.items: list[Diagnostic] = []

    def add(
        self,
        path: tuple[str | int, ...],
        message: str,
        fix: str | None = None,
        *,
        code: str,
        key: bool = False,
        needle: str = "",
    ) -> None:
        mark = mark_for_path(self.raw, path, key=key)
        if needle:
            mark = self._refine(mark, needle)
        self.items.append(Diagnostic(self.file, mark.line, mark.col, message, path, fix, code))

    def at(
        self,
        mark: Mark,
        message: str,
        fix: str | None = None,
        path: tuple[str | int, ...] = (),
        *,
        code: str,
    ) -> None:
        self.items.append(Diagnostic(self.file, mark.line, mark.col, message, path, fix, code))

    def _refine(self, mark: Mark, needle: str) -> Mark:
        """Point inside a one-line value at the text the problem is about
        (`steps.atempt` in `"{{ steps.atempt.state }}"`), when it is there."""
        if not 0 < mark.line <= len(self.lines):
            return mark
        found = self.lines[mark.line - 1].find(needle, mark.col - 1)
        return Mark(mark.line, found + 1) if found >= 0 else mark

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "error"]


def load_playbook(path: Path, registry: Registry) -> Playbook:
    """Load and validate; raise PlaybookError carrying every error (warnings
    do not stop plan or run: `recover validate` shows them)."""
    playbook, diagnostics = check_playbook(path, registry)
    errors = [d for d in diagnostics if d.severity == "error"]
    if errors or playbook is None:
        raise PlaybookError(errors)
    return playbook


def check_playbook(path: Path, registry: Registry) -> tuple[Playbook | None, list[Diagnostic]]:
    """The playbook (None if it has errors) and every diagnostic, warnings included."""
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
                code="R004",
            )
        ]
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        col = exc.start - (exc.object.rfind(b"\n", 0, exc.start) + 1) + 1
        return None, [
            Diagnostic(
                file,
                line,
                col,
                f"the playbook is not UTF-8 text: byte 0x{exc.object[exc.start]:02x} "
                f"at line {line}, column {col}",
                fix="save the playbook as UTF-8 (e.g. iconv -f LATIN1 -t UTF-8)",
                code="R004",
            )
        ]
    except OSError as exc:
        return None, [
            Diagnostic(
                file,
                1,
                1,
                f"cannot read playbook: {exc.strerror or exc}",
                fix="check the path and its permissions; give a regular file",
                code="R004",
            )
        ]
    try:
        raw, problems = load_positioned(text)
    except YamlSyntaxError as exc:
        p = exc.problem
        frame = code_frame(text, p.mark.line, p.mark.col)
        return None, [
            Diagnostic(file, p.mark.line, p.mark.col, p.message, p.path, p.fix, p.code, frame)
        ]
    out = _Collector(file, raw, registry, text)
    for problem in problems:
        out.at(problem.mark, problem.message, problem.fix, problem.path, code=problem.code)
    if not isinstance(raw, PosDict):
        out.at(
            Mark(1, 1),
            "a playbook must be a YAML mapping (version, name, steps, ...)",
            "start from one of the shipped playbooks in playbooks/",
            code="R004",
        )
        return None, out.items
    _check_core_schema(raw, out)
    params = _check_params(raw, out)
    steps = _check_steps(raw, params, out)
    _check_expressions(raw, params, out)
    _check_site(raw, out)
    _check_safety(raw, out)
    found = sorted(out.items, key=lambda d: (d.line, d.col))
    if out.errors:
        return None, found
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
    ), found


# -- schema ----------------------------------------------------------------


def _check_core_schema(raw: PosDict, out: _Collector) -> None:
    if is_valid(core_schema(), raw, FORMATS) is True:
        return  # certainly no error: jsonschema, only needed to explain them, stays unloaded
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
        _report_forms(error, prefix, out)
        return
    path = prefix + tuple(error.absolute_path)
    if "propertyNames" in error.schema_path and isinstance(error.instance, str):
        name = error.instance
        out.add(
            (*path, name),
            f"name {name!r} is not allowed here: {error.message}",
            _fix_for(error),
            code="R107",
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
                out.add((*path, key), f"unknown key {key!r}", fix, code="R101", key=True)
        return
    if error.validator == "required":
        missing = re.search(r"'([^']+)' is a required property", error.message)
        name = missing.group(1) if missing else "?"
        out.add(path, f"missing required key {name!r}", f"add `{name}:` here", code="R102")
        return
    if error.validator == "minProperties" and isinstance(error.instance, dict):
        names = sorted(error.schema.get("properties", {})) if isinstance(error.schema, dict) else []
        choice = " or ".join(names) if names else "a key"
        out.add(
            path,
            f"needs at least {error.validator_value} of its keys: {choice}",
            "add one of: " + ", ".join(names) if names else _fix_for(error),
            code="R102",
        )
        return
    if error.validator == "type":
        fix = f"write {_type_words(error.validator_value)}"
        if isinstance(error.instance, bool) and "string" in str(error.validator_value):
            fix = "put the value in quotes: YAML reads unquoted yes/no/on/off as booleans"
        out.add(
            path,
            f"expected {_type_words(error.validator_value)}, got {_show(error.instance)}",
            fix,
            code="R103",
        )
        return
    if error.validator == "format" and error.validator_value == "site-path":
        cause = error.cause
        out.add(
            path,
            str(cause.message if isinstance(cause, SiteError) else error.message),
            (cause.fix if isinstance(cause, SiteError) else None)
            or "use a path relative to the site, without '..' or a leading '/'",
            code="R106",
        )
        return
    if error.validator == "enum":
        close = difflib.get_close_matches(
            str(error.instance), list(map(str, error.validator_value))
        )
        prefixed = [v for v in map(str, error.validator_value) if v.startswith(str(error.instance))]
        guess = close[:1] or prefixed[:1]
        out.add(
            path,
            f"{_show(error.instance)} is not one of the allowed values",
            (f"did you mean {guess[0]!r}? " if guess else "")
            + "use one of: "
            + ", ".join(map(str, error.validator_value)),
            code="R104",
        )
        return
    out.add(path, error.message, _fix_for(error), code="R104")


def _report_forms(error: ValidationError, prefix: tuple[str | int, ...], out: _Collector) -> None:
    """A value that fits none of an anyOf/oneOf's forms: name the forms in words
    and fix toward the one the value is closest to."""
    path = prefix + tuple(error.absolute_path)
    branches = [b for b in error.validator_value if isinstance(b, dict)]
    forms = _forms_words(branches)
    closest = _closest_branch(branches, error.instance)
    fix = None
    if closest is not None:
        others = _forms_words([b for b in branches if b is not closest and b.get("type") != "null"])
        fix = _branch_fix(closest, error.instance)
        fix = fix and (f"{fix}; or write {others}" if others != "null" else fix)
    out.add(
        path,
        f"expected {forms}; got {_show(error.instance)}",
        fix or f"write {forms}",
        code="R105",
    )


def describe_forms(schema: dict[str, Any]) -> str:
    """What a schema accepts, in words ("an integer >= 1, or 'all'")."""
    for combinator in ("anyOf", "oneOf"):
        branches = schema.get(combinator)
        if isinstance(branches, list):
            return _forms_words([b for b in branches if isinstance(b, dict)])
    return _form_words(schema)


def _forms_words(branches: list[dict[str, Any]]) -> str:
    words = [_form_words(b) for b in branches if b.get("type") != "null"] or ["null"]
    words = list(dict.fromkeys(words))
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + ", or " + words[-1]


def _form_words(schema: dict[str, Any]) -> str:
    """One schema form in words: "an integer >= 1", "'all'", "a list of {begin, end?}"."""
    if "title" in schema:
        return str(schema["title"])
    if "const" in schema:
        return repr(schema["const"])
    if "enum" in schema:
        return "one of " + ", ".join(map(repr, schema["enum"]))
    kind = schema.get("type")
    if kind in ("integer", "number"):
        text = _type_words(kind)
        if "minimum" in schema:
            text += f" >= {schema['minimum']}"
        if "maximum" in schema:
            text += f" <= {schema['maximum']}"
        return text
    if kind == "string" and schema.get("pattern") == "\\{\\{":
        return "a {{ expression }}"
    if kind == "array" and isinstance(schema.get("items"), dict):
        items = schema["items"]
        if items.get("type") == "object" and isinstance(items.get("properties"), dict):
            return f"a list of {_object_shape(items)}"
        return f"a list of {_form_words(items).removeprefix('a ').removeprefix('an ')}s"
    if kind == "object" and isinstance(schema.get("properties"), dict):
        return f"a mapping {_object_shape(schema)}"
    return _type_words(kind) if kind else "a value"


def _object_shape(schema: dict[str, Any]) -> str:
    required = set(schema.get("required", []))
    keys = [k if k in required else f"{k}?" for k in schema.get("properties", {})]
    return "{" + ", ".join(keys) + "}"


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "null": (type(None),),
    "boolean": (bool,),
    "integer": (int,),
    "number": (int, float),
    "string": (str,),
    "array": (list,),
    "object": (dict,),
}


def _type_words(kind: Any) -> str:
    words = {
        "null": "null",
        "boolean": "a boolean",
        "integer": "an integer",
        "number": "a number",
        "string": "a string",
        "array": "a list",
        "object": "a mapping",
    }
    if isinstance(kind, list):
        return " or ".join(words.get(str(k), str(k)) for k in kind)
    return words.get(str(kind), str(kind))


def _is_type(value: Any, kind: str) -> bool:
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _JSON_TYPES.get(kind, ()))


def _closest_branch(branches: list[dict[str, Any]], value: Any) -> dict[str, Any] | None:
    """The form the value is nearest: one of its type (a const it resembles
    counts); for a mapping or a text where a list of mappings goes, that list."""
    for branch in branches:
        kind = branch.get("type")
        if isinstance(kind, str) and _is_type(value, kind) and "pattern" not in branch:
            return branch
    for branch in branches:
        const = branch.get("const")
        if (
            isinstance(const, str)
            and isinstance(value, str)
            and difflib.SequenceMatcher(None, value.lower(), const).ratio() >= 0.6
        ):
            return branch
    for branch in branches:
        items = branch.get("items")
        if (
            branch.get("type") == "array"
            and isinstance(items, dict)
            and items.get("type") == "object"
            and isinstance(value, (dict, str))
        ):
            return branch
    return None


def _branch_fix(branch: dict[str, Any], value: Any) -> str | None:
    """How to turn `value` into the form it is closest to."""
    if "const" in branch:
        return f"write {branch['const']!r}"
    kind = branch.get("type")
    if kind in ("integer", "number"):
        return f"give {_form_words(branch)}"
    items = branch.get("items")
    if kind == "array" and isinstance(items, dict) and items.get("type") == "object":
        return f"write a list, e.g. [{_item_example(items, value)}]"
    return None


def _item_example(items: dict[str, Any], value: Any) -> str:
    """One list item written from what the user wrote: a mapping with its keys
    corrected ({begin: 90, ned: 150} -> {begin: 90, end: 150}) or "90-150"."""
    names = list(items.get("properties", {}))
    pairs: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            close = difflib.get_close_matches(str(key), names, n=1)
            pairs.append((close[0] if close else str(key), item))
    elif isinstance(value, str):
        numbers = re.findall(r"\d+", value)
        pairs = list(zip(names, (int(n) for n in numbers), strict=False))
    if not pairs:
        pairs = [(name, 0) for name in items.get("required", names[:1])]
    return "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"


_PATTERN_WORDS = {
    "^[A-Za-z0-9][A-Za-z0-9_.-]*$": "use letters, digits, '_', '.' and '-', starting with a "
    "letter or digit (e.g. archive-vol2)",
    "^[A-Za-z_][A-Za-z0-9_-]*$": "start with a letter or '_', then letters, digits, '_' or '-' "
    "(e.g. first_batch)",
    "^[A-Za-z_][A-Za-z0-9_]*$": "start with a letter or '_', then letters, digits or '_' "
    "(e.g. max_jobs): expressions use the name as it is",
    "^[a-z_]+\\.[a-z_]+$": "write procedure.action in lower case, e.g. archive.load "
    "(`recover actions` lists them)",
}


def _fix_for(error: ValidationError) -> str:
    rule, value = error.validator, error.validator_value
    if rule == "enum":
        return "use one of: " + ", ".join(map(str, value))
    if rule == "const":
        return f"write {value!r}"
    if rule == "pattern":
        return _PATTERN_WORDS.get(value, f"the value must match the pattern {value}")
    if rule == "minimum":
        return f"give a number >= {value}"
    if rule == "maximum":
        return f"give a number <= {value}"
    if rule == "exclusiveMinimum":
        return f"give a number > {value}"
    if rule == "exclusiveMaximum":
        return f"give a number < {value}"
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
    if rule == "maxProperties":
        return f"give at most {value} key(s)"
    return "see the allowed values with `recover actions NAME` or `recover schema`"


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
    """The declared params. One with a bad type (the schema reports it) is still
    declared, so the expressions that use it are not reported as well."""
    params: dict[str, Param] = {}
    declared = raw.get("params")
    if not isinstance(declared, dict):
        return params
    for name, spec in declared.items():
        if not isinstance(spec, dict):
            continue  # the schema already reported it
        if name in RESERVED_NAMES:
            out.add(
                ("params", name),
                f"param name {name!r} is reserved",
                "rename the param",
                code="R204",
                key=True,
            )
            continue
        kind = spec.get("type")
        known = isinstance(kind, str) and kind in PARAM_TYPES
        kind = kind if isinstance(kind, str) and known else "string"
        has_default = "default" in spec
        if known and has_default and not type_matches(kind, spec["default"]):
            out.add(
                ("params", name, "default"),
                f"default of param {name!r} is {_show(spec['default'])}, "
                f"but the param is declared {kind}",
                f"give a {kind} default or change the type",
                code="R203",
            )
        if not spec.get("description"):
            out.add(
                ("params", name),
                f"param {name!r} has no description",
                f"add `description:` to param {name!r}: what it is, and an example value",
                code="W302",
                key=True,
            )
        params[name] = Param(
            name,
            kind,
            spec.get("default"),
            has_default,
            spec.get("description", ""),
        )
    return params


def _step_ids(raw: PosDict) -> dict[str, tuple[int, str | None]]:
    """Every step id written (first use wins) -> (index, action if a known one).

    Steps with an unknown action or a malformed id are here too: a later
    `steps.X` names them rightly, and their own problem is reported once."""
    ids: dict[str, tuple[int, str | None]] = {}
    raw_steps = raw.get("steps")
    for index, spec in enumerate(raw_steps if isinstance(raw_steps, list) else []):
        if isinstance(spec, dict) and isinstance(spec.get("id"), str):
            action = spec.get("action")
            ids.setdefault(spec["id"], (index, action if isinstance(action, str) else None))
    return ids


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
                code="R213",
            )
        elif when is True or (isinstance(when, str) and _ALWAYS_TRUE.match(when)):
            out.add(
                ("steps", index, "when"),
                "`when` is always true, so it changes nothing",
                "remove `when:`, or write the condition the step depends on",
                code="W303",
            )
        raw_id, action = spec.get("id"), spec.get("action")
        good_id = isinstance(raw_id, str)  # a bad id is the schema's to report
        step_id = raw_id if isinstance(raw_id, str) else ""
        if good_id and step_id in seen:
            out.add(
                ("steps", index, "id"),
                f"duplicate step id {step_id!r} (first used by step {seen[step_id] + 1})",
                "give every step its own id",
                code="R202",
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
                else "list the actions with `recover actions` (or see docs/playbooks.md)",
                code="R201",
            )
            continue
        args = spec.get("args", {})
        rendered = _check_args(index, action, args, defaults, out) if isinstance(args, dict) else {}
        if isinstance(args, dict):
            _check_output_types(index, action, args, raw, out)
            _check_param_types(index, action, args, params, out)
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
    # the procedures of the playbook's actions only: asking for all of them would
    # look for other packages' procedures, which this playbook cannot use
    used = {registry.procedure_of(v.action).name: registry.procedure_of(v.action) for v in views}
    for procedure in used.values():
        if procedure.validate_steps is not None:
            mine = [v for v in views if v.action.split(".")[0] == procedure.name]
            for finding in procedure.validate_steps(mine):
                out.add(finding.path, finding.message, finding.fix, code="R212")
    return steps


_ALWAYS_TRUE = re.compile(r"^\s*\{\{\s*(true|True|1)\s*\}\}\s*$")
_WHOLE_OUTPUT = re.compile(
    r"^\s*\{\{\s*steps\.([A-Za-z_][A-Za-z0-9_]*)\.outputs\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}\s*$"
)
_OUTPUT_TYPES = {
    "integer": {"integer", "number"},
    "number": {"number"},
    "string": {"string"},
    "boolean": {"boolean"},
    "list": {"array"},
    "object": {"object"},
    "null": {"null"},
}


def _check_output_types(
    index: int, action: str, args: dict[str, Any], raw: PosDict, out: _Collector
) -> None:
    """An argument that is exactly one earlier step's output must be able to take
    that output's declared type (a list where an integer goes is an error now,
    not at run time)."""
    properties = out.registry.action_schema(action).get("properties", {})
    ids: dict[str, tuple[int, str | None]] | None = None
    for key, value in args.items():
        match = _WHOLE_OUTPUT.match(value) if isinstance(value, str) else None
        if match is None or not isinstance(properties.get(key), dict):
            continue
        ids = ids if ids is not None else _step_ids(raw)
        source, name = match.groups()
        source_action = ids.get(source, (0, None))[1]
        declared = _declared_outputs(out.registry, source_action)
        if declared is None or name not in declared:
            continue  # reported (or not checkable) with the reference itself
        produced = set().union(*(_OUTPUT_TYPES[k] for k in declared[name].type.split(" or ")))
        accepted = _accepted_types(properties[key])
        if accepted and not produced & accepted:
            out.add(
                ("steps", index, "args", key),
                f"`steps.{source}.outputs.{name}` is {_type_words_of(declared[name].type)}, "
                f"but {key!r} takes {_type_words(sorted(accepted))}",
                f"use an output of the right type (see `recover actions {source_action}`), "
                "or convert it in the expression",
                code="R210",
            )


_WHOLE_PARAM = re.compile(r"^\s*\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}\s*$")


def _check_param_types(
    index: int, action: str, args: dict[str, Any], params: dict[str, Param], out: _Collector
) -> None:
    """An argument that is exactly a param with no default (so nothing to render
    at validate time) must be able to take the param's declared type."""
    properties = out.registry.action_schema(action).get("properties", {})
    for key, value in args.items():
        match = _WHOLE_PARAM.match(value) if isinstance(value, str) else None
        param = params.get(match.group(1)) if match else None
        if param is None or param.has_default or not isinstance(properties.get(key), dict):
            continue
        accepted = _accepted_types(properties[key])
        if accepted and not _OUTPUT_TYPES[param.type] & accepted:
            out.add(
                ("steps", index, "args", key),
                f"param {param.name!r} is declared {param.type}, "
                f"but {key!r} takes {_type_words(sorted(accepted))}",
                f"declare {param.name!r} with the type {key!r} takes",
                code="R210",
            )


def _type_words_of(kind: str) -> str:
    return " or ".join(_type_words({"list": "array"}.get(k, k)) for k in kind.split(" or "))


def _accepted_types(schema: dict[str, Any]) -> set[str]:
    """The JSON types a schema can take (empty: unknown, anything goes)."""
    kind = schema.get("type")
    if isinstance(kind, str):
        return {kind}
    if isinstance(kind, list):
        return set(map(str, kind))
    if "const" in schema:
        return {_json_type(schema["const"])}
    for combinator in ("anyOf", "oneOf"):
        if isinstance(schema.get(combinator), list):
            found: set[str] = set()
            for branch in schema[combinator]:
                sub = _accepted_types(branch) if isinstance(branch, dict) else set()
                if not sub:
                    return set()
                found |= sub
            return found
    return set()


def _json_type(value: Any) -> str:
    return next(
        (
            kind
            for kind in ("null", "boolean", "integer", "number", "string", "array", "object")
            if _is_type(value, kind)
        ),
        "string",
    )


def _declared_outputs(registry: Registry, action: str | None) -> Mapping[str, Output] | None:
    if action is None or action not in registry:
        return None
    return registry.info(action).outputs


def check_with_params(
    playbook: Playbook, params: dict[str, Any], registry: Registry
) -> list[Diagnostic]:
    """Every step's arguments and `when` as they will be with these param values.

    `validate` checks them with the params' defaults; `plan` and `run` check
    them again with the values actually given, so that a bad `--param` is
    reported before the first step runs rather than when its step comes.
    Values that depend on earlier steps' outputs are left for run time.
    """
    out = _Collector(str(playbook.path), playbook.raw, registry, playbook.text)
    for step in playbook.steps:
        base: tuple[str | int, ...] = ("steps", step.index)
        targets: list[tuple[tuple[str | int, ...], Any]] = [((*base, "when"), step.when)]
        targets += list(_walk_strings(step.args, (*base, "args")))
        for path, text in targets:
            if has_template(text) and not _STEP_REF.search(text):
                try:
                    render_value(text, params)
                except TemplateProblem as exc:
                    out.add(
                        path,
                        f"expression fails: {exc}",
                        "fix the {{ ... }} expression, or give a --param value it works with",
                        code="R207",
                    )
        _check_args(step.index, step.action, step.args, params, out)
    return sorted(out.items, key=lambda d: (d.line, d.col))


def _check_args(
    index: int, action: str, args: dict[str, Any], defaults: dict[str, Any], out: _Collector
) -> dict[str, Any]:
    """Validate args as they will be after rendering with the params' defaults;
    returns them so rendered (what is only known later left out)."""
    rendered = _render_leniently(_without_step_refs(args), defaults)
    schema = out.registry.action_schema(action)
    errors = (
        []
        if is_valid(schema, rendered, FORMATS) is True
        else _validator(schema).iter_errors(rendered)
    )
    for error in errors:
        if error.validator == "required" and _written(args, error):
            continue  # its value is only known later, or its expression is reported
        _report_schema_error(error, ("steps", index, "args"), _allowed_keys(error), out)
    for path, number in _huge_integers(rendered, ("steps", index, "args")):
        out.add(
            path,
            f"{number} does not fit in SQLite's 64-bit integers "
            f"({SQLITE_MIN_INT} to {SQLITE_MAX_INT})",
            "give a smaller number",
            code="R108",
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


_STEP_FIELDS = ("outputs", "state", "changes", "loss", "reports")
_STEP_PATH = re.compile(
    r"\bsteps\.([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z_][A-Za-z0-9_]*))?(?:\.([A-Za-z_][A-Za-z0-9_]*))?"
)
_UNKNOWN_NAME = re.compile(r"No (filter|test) named '([^']+)'")


def _check_expressions(raw: PosDict, params: dict[str, Param], out: _Collector) -> None:
    defaults = {name: p.default for name, p in params.items() if p.has_default}
    step_ids = _step_ids(raw)
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
                message, fix = _explain_template(str(exc))
                unknown = _UNKNOWN_NAME.search(str(exc))
                out.add(path, message, fix, code="R206", needle=unknown.group(2) if unknown else "")
                continue
            for name in sorted(names - set(params) - RESERVED_NAMES):
                close = difflib.get_close_matches(name, list(params), n=1)
                out.add(
                    path,
                    f"param {name!r} is used but not declared",
                    f"did you mean {close[0]!r}?"
                    if close
                    else f"declare it under params: ({name}: {{type: string}})",
                    code="R205",
                    needle=name,
                )
            here = int(base[1]) if base[0] == "steps" else None
            refs = _STEP_PATH.findall(text)
            for ref in refs:
                _check_step_reference(ref, here, step_ids, path, out)
            if refs or names - set(defaults):
                continue  # values only known at run time
            try:
                render_value(text, defaults)
            except TemplateProblem as exc:
                out.add(
                    path,
                    f"expression fails with the params' defaults: {exc}",
                    "fix the {{ ... }} expression, or the default it uses",
                    code="R207",
                )


def _explain_template(problem: str) -> tuple[str, str]:
    """A parse problem in words, with did-you-mean for unknown filters and tests."""
    unknown = _UNKNOWN_NAME.search(problem)
    if unknown:
        kind, name = unknown.groups()
        known = filter_names() if kind == "filter" else jinja_tests()
        close = difflib.get_close_matches(name, known, n=1)
        return (
            f"unknown {kind} {name!r}",
            f"did you mean {close[0]!r}?"
            if close
            else f"use one of the {kind}s: " + ", ".join(known),
        )
    return f"bad expression: {problem}", "fix the {{ ... }} expression (Jinja syntax)"


def _check_step_reference(
    ref: tuple[str, str, str],
    here: int | None,
    step_ids: dict[str, tuple[int, str | None]],
    path: tuple[str | int, ...],
    out: _Collector,
) -> None:
    """`steps.X.FIELD.NAME`: X an earlier step, FIELD one a step has, NAME one
    of X's declared outputs (each with did-you-mean)."""
    step, field, name = ref
    earlier = [sid for sid, (index, _) in step_ids.items() if here is not None and index < here]
    if step not in step_ids:
        close = difflib.get_close_matches(step, earlier or list(step_ids), n=1)
        out.add(
            path,
            f"`steps.{step}` names no step",
            f"did you mean {close[0]!r}?"
            if close
            else "refer to an earlier step by its id"
            + (f" (earlier steps: {', '.join(earlier)})" if earlier else ""),
            code="R208",
            needle=f"steps.{step}",
        )
        return
    index, action = step_ids[step]
    if here is None or index >= here:
        where = "this step itself" if index == here else f"a later step (step {index + 1})"
        out.add(
            path,
            f"`steps.{step}` is {where}: "
            + ("site and safety" if here is None else "a step")
            + " can only use the steps before it",
            "refer only to steps that come before this one: move this step after "
            + repr(step)
            + (f", or use one of: {', '.join(earlier)}" if earlier else ""),
            code="R208",
            needle=f"steps.{step}",
        )
        return
    if not field:
        return
    if field not in _STEP_FIELDS:
        close = difflib.get_close_matches(field, _STEP_FIELDS, n=1)
        out.add(
            path,
            f"`steps.{step}.{field}`: a step has no {field!r}",
            (f"did you mean {close[0]!r}? " if close else "")
            + "a step has: "
            + ", ".join(_STEP_FIELDS),
            code="R209",
            needle=f"steps.{step}.{field}",
        )
        return
    declared = _declared_outputs(out.registry, action)
    if field != "outputs" or not name or declared is None or name in declared:
        return
    close = difflib.get_close_matches(name, list(declared), n=1, cutoff=0.5)
    close = close or [known for known in declared if known.startswith(name)][:1]
    out.add(
        path,
        f"`steps.{step}.outputs.{name}`: {action} has no output {name!r}",
        (f"did you mean {close[0]!r}? " if close else "")
        + f"its outputs: {', '.join(declared) or 'none'} (see `recover actions {action}`)",
        code="R209",
        needle=f"steps.{step}.outputs.{name}",
    )


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
            out.add(("site", key), exc.message, "use a path relative to the site root", code="R106")


def _check_safety(raw: PosDict, out: _Collector) -> None:
    """allow_loss units against the units the playbook's steps can lose, and
    each step that can lose data against the budget."""
    safety = raw.get("safety")
    allow = safety.get("allow_loss") if isinstance(safety, dict) else None
    allow = allow if isinstance(allow, dict) else {}
    found_steps = raw.get("steps")
    raw_steps: list[Any] = found_steps if isinstance(found_steps, list) else []
    units: dict[str, list[int]] = {}
    all_known = True
    for index, spec in enumerate(raw_steps):
        action = spec.get("action") if isinstance(spec, dict) else None
        if not isinstance(action, str) or action not in out.registry:
            all_known = False  # reported already; its units are unknown
            continue
        # An action that declares its outputs declares its loss units too; one
        # that declares neither (an older procedure) may count loss in any unit.
        all_known = all_known and out.registry.info(action).outputs is not None
        for unit in out.registry.info(action).loss_units:
            units.setdefault(unit, []).append(index)
    if all_known:
        for unit in allow:
            if unit in units:
                continue
            everywhere = sorted({u for a in out.registry.actions.values() for u in a.loss_units})
            if unit in everywhere:
                out.add(
                    ("safety", "allow_loss", unit),
                    f"no step of this playbook can lose {unit!r}, so this budget is unused",
                    f"remove `{unit}:`, or add the step that needs it",
                    code="W304",
                    key=True,
                )
                continue
            close = difflib.get_close_matches(str(unit), list(units) or everywhere, n=1)
            mine = f" (this playbook's steps count loss in: {', '.join(units)})" if units else ""
            out.add(
                ("safety", "allow_loss", unit),
                f"unknown loss unit {unit!r}{mine}",
                f"did you mean {close[0]!r}?"
                if close
                else "use a unit the steps count loss in: " + ", ".join(units or everywhere),
                code="R211",
                key=True,
            )
    for unit, indexes in units.items():
        if unit in allow:
            continue
        for index in indexes:
            spec = raw_steps[index]
            out.add(
                ("steps", index, "action"),
                f"step {spec.get('id')!r} ({spec['action']}) can lose {unit}, and "
                f"safety.allow_loss allows no {unit}: any loss will stop the run",
                f"add `{unit}: N` under safety.allow_loss (`recover plan` shows the figure), "
                f"or `{unit}: 0` to make the refusal explicit",
                code="W301",
            )
