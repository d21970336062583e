"""Is this value valid under this JSON Schema? Answered without jsonschema.

jsonschema (with referencing, attrs and jsonschema_specifications) costs about
70 ms to import, most of `recover validate`'s start-up. Almost every playbook
checked is valid, and a valid one needs only a yes: this module gives it for
the keyword subset the shipped schemas use, exactly as jsonschema's
Draft202012Validator would. Whenever the answer is not certain (an unknown
keyword or format, a float where an integer is asked, a non-local `$ref`, an
exotic Python value...) it says so, and the caller asks jsonschema, which
also writes the error messages: this module never explains, it only decides.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sized
from typing import Any

Check = Callable[[Any], bool]
#: a format's test and the exceptions that mean "invalid", as jsonschema's
#: `FormatChecker.checks(name, raises=...)` takes them
FormatTest = tuple[Callable[[Any], object], type[BaseException] | tuple[type[BaseException], ...]]

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"


class Unsure(Exception):
    """The answer is not certain here: only jsonschema can give it."""


def is_valid(
    schema: Any, instance: Any, formats: Mapping[str, FormatTest] | None = None
) -> bool | None:
    """True/False exactly as Draft202012Validator(schema, format_checker=C)
    finds no error/some error, where C checks `formats` (None: no format
    checker, `format` is only an annotation); None when unsure."""
    try:
        return _compiled(schema, formats)(instance)
    except Unsure:
        return None


def _compiled(schema: Any, formats: Mapping[str, FormatTest] | None) -> Check:
    """One compiled check per schema object and formats (a registry's schemas
    live as long as the process; both are kept so their ids stay theirs)."""
    key = (id(schema), id(formats))
    known = _COMPILED.get(key)
    if known is not None and known[0] is schema and known[1] is formats:
        return known[2]
    check = _Compiler(schema, formats).compile(schema, root=True)
    if len(_COMPILED) >= 1024:  # a long-lived process loading many registries
        _COMPILED.clear()
    _COMPILED[key] = (schema, formats, check)
    return check


_COMPILED: dict[tuple[int, int], tuple[Any, Any, Check]] = {}


# -- values ------------------------------------------------------------------

_PLAIN_TYPES = (str, bool, int, list, dict, type(None))


def _kind(value: Any) -> str:
    """The JSON type jsonschema sees, for anything but a float (which `type`
    decides itself); Unsure for what YAML and JSON do not make."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    raise Unsure


def _is_number(value: Any) -> bool:
    """Whether jsonschema compares this value with minimum/maximum."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    if isinstance(value, str | list | dict) or value is None:
        return False
    raise Unsure  # Decimal, Fraction, complex...: numbers.Number, compared their own way


def _equal(one: Any, two: Any) -> bool:
    """jsonschema's `equal` (True is not 1, lists and mappings item by item),
    for values without floats (NaN, and 1 == 1.0, are its subtleties)."""
    if not isinstance(one, _PLAIN_TYPES) or not isinstance(two, _PLAIN_TYPES):
        raise Unsure
    if isinstance(one, str) or isinstance(two, str):
        return bool(one == two)
    if isinstance(one, list) and isinstance(two, list):
        return len(one) == len(two) and all(_equal(a, b) for a, b in zip(one, two, strict=True))
    if isinstance(one, dict) and isinstance(two, dict):
        if len(one) != len(two):
            return False
        for key, value in one.items():
            if key not in two:
                return False
            if not _equal(value, two[key]):
                return False
        return True
    if isinstance(one, list | dict) or isinstance(two, list | dict):
        return False  # a container is never equal to a scalar or the other kind
    if isinstance(one, bool) != isinstance(two, bool):
        return False
    return bool(one == two)


def _unique_key(value: Any) -> tuple[str, Any]:
    """What makes a scalar distinct under jsonschema's `uniq` (True is not 1).
    Containers are Unsure: `uniq` sorts them and only compares neighbours."""
    if value is None or isinstance(value, bool | int | str):
        return (type(value).__name__ if isinstance(value, bool) else "value", value)
    raise Unsure


# -- the compiler --------------------------------------------------------------

#: keywords jsonschema never reports an error for ($defs only holds what `$ref`s name)
_ANNOTATIONS = frozenset(
    [
        "title",
        "description",
        "default",
        "examples",
        "$comment",
        "deprecated",
        "readOnly",
        "writeOnly",
        "$defs",
    ]
)


def _true(instance: Any) -> bool:
    return True


def _false(instance: Any) -> bool:
    return False


def _unsure(instance: Any) -> bool:
    raise Unsure


def _all(checks: list[Check]) -> Check:
    """Every check passes. One definite failure is an error jsonschema reports
    too (keywords only ever add errors), so it wins over another's doubt."""
    if not checks:
        return _true
    if len(checks) == 1:
        return checks[0]

    def check(instance: Any) -> bool:
        unsure = False
        for each in checks:
            try:
                if not each(instance):
                    return False
            except Unsure:
                unsure = True
        if unsure:
            raise Unsure
        return True

    return check


def _each(pairs: list[tuple[Check, Any]]) -> bool:
    """Every (check, value) passes; a definite failure wins over doubt."""
    unsure = False
    for check, value in pairs:
        try:
            if not check(value):
                return False
        except Unsure:
            unsure = True
    if unsure:
        raise Unsure
    return True


def _regex(pattern: Any) -> re.Pattern[str] | None:
    """The compiled pattern, or None where re.search would raise (jsonschema
    would fail there, not answer)."""
    if not isinstance(pattern, str):
        return None
    try:
        return re.compile(pattern)
    except re.error:
        return None


def _count(limit: Any) -> bool:
    return isinstance(limit, int) and not isinstance(limit, bool)


def _size(limit: Any, kind: type[Sized], *, at_least: bool) -> Check:
    """min/maxProperties, min/maxItems, min/maxLength: a bound on len() of
    values of one kind (the others pass, as jsonschema lets them)."""
    if not _count(limit):
        return _unsure
    if at_least:
        return lambda instance: not isinstance(instance, kind) or len(instance) >= limit
    return lambda instance: not isinstance(instance, kind) or len(instance) <= limit


class _Compiler:
    """Turns a schema into nested closures once, so each check is a few calls
    instead of a walk over the schema's keys."""

    def __init__(self, root: Any, formats: Mapping[str, FormatTest] | None) -> None:
        self.root = root
        self.formats = formats
        self.done: dict[int, Check] = {}

    def compile(self, schema: Any, root: bool = False) -> Check:
        if schema is True:
            return _true
        if schema is False:
            return _false
        if not isinstance(schema, dict):
            return _unsure
        known = self.done.get(id(schema))
        if known is not None:
            return known
        # A `$ref` cycle reaches this schema again while it compiles: point it
        # at a forwarder that calls the finished check.
        finished: list[Check] = []

        def forward(instance: Any) -> bool:
            return finished[0](instance)

        self.done[id(schema)] = forward
        check = self._object(schema, root)
        finished.append(check)
        self.done[id(schema)] = check
        return check

    def _object(self, schema: dict[str, Any], root: bool) -> Check:
        checks: list[Check] = []
        for keyword, value in schema.items():
            if keyword in _ANNOTATIONS:
                continue
            if keyword == "$schema" and value == DRAFT_2020_12:
                continue
            if keyword == "$id" and root:
                continue  # a nested $id would change what `$ref`s resolve against
            method = _KEYWORDS.get(keyword)
            checks.append(method(self, value, schema) if method is not None else _unsure)
        return _all(checks)

    # -- one method per keyword: value -> check ---------------------------------

    def _k_type(self, value: Any, schema: dict[str, Any]) -> Check:
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list) or not names:
            return _unsure
        allowed = set(names)
        if not allowed <= {"null", "boolean", "integer", "number", "string", "array", "object"}:
            return _unsure  # jsonschema raises UnknownType
        number = "number" in allowed
        integer = "integer" in allowed

        def check(instance: Any) -> bool:
            if isinstance(instance, float):
                if number:
                    return True
                if integer and instance.is_integer():
                    raise Unsure  # 2020-12 counts 1.0 as an integer
                return False
            kind = _kind(instance)
            return kind in allowed or (kind == "integer" and number)

        return check

    def _k_enum(self, value: Any, schema: dict[str, Any]) -> Check:
        if not isinstance(value, list):
            return _unsure
        options = list(value)

        def check(instance: Any) -> bool:
            return any(_equal(option, instance) for option in options)

        return check

    def _k_const(self, value: Any, schema: dict[str, Any]) -> Check:
        return lambda instance: _equal(instance, value)

    def _k_properties(self, value: Any, schema: dict[str, Any]) -> Check:
        if not isinstance(value, dict):
            return _unsure
        subs = [(name, self.compile(sub)) for name, sub in value.items()]

        def check(instance: Any) -> bool:
            if not isinstance(instance, dict):
                return True
            return _each([(sub, instance[name]) for name, sub in subs if name in instance])

        return check

    def _k_patternProperties(self, value: Any, schema: dict[str, Any]) -> Check:
        if not isinstance(value, dict):
            return _unsure
        subs: list[tuple[re.Pattern[str], Check]] = []
        for pattern, sub in value.items():
            regex = _regex(pattern)
            if regex is None:
                return _unsure
            subs.append((regex, self.compile(sub)))

        def check(instance: Any) -> bool:
            if not isinstance(instance, dict):
                return True
            pairs: list[tuple[Check, Any]] = []
            for regex, sub in subs:
                for key, item in instance.items():
                    if not isinstance(key, str):
                        raise Unsure
                    if regex.search(key):
                        pairs.append((sub, item))
            return _each(pairs)

        return check

    def _k_additionalProperties(self, value: Any, schema: dict[str, Any]) -> Check:
        named = schema.get("properties", {})
        patterns = schema.get("patternProperties", {})
        if not isinstance(named, dict) or not isinstance(patterns, dict):
            return _unsure
        # jsonschema joins the patterns with "|" and searches once
        joined = "|".join(patterns) if all(isinstance(p, str) for p in patterns) else None
        regex = _regex(joined) if joined else None
        if joined and regex is None:
            return _unsure
        if value is True:
            return _true
        if value is not False and not isinstance(value, dict):
            return _unsure

        def extras(instance: dict[Any, Any]) -> list[Any]:
            found = []
            for key in instance:
                if key in named:
                    continue
                if regex is not None:
                    if not isinstance(key, str):
                        raise Unsure
                    if regex.search(key):
                        continue
                found.append(key)
            return found

        if value is False:
            return lambda instance: not isinstance(instance, dict) or not extras(instance)
        sub = self.compile(value)

        def check(instance: Any) -> bool:
            if not isinstance(instance, dict):
                return True
            return _each([(sub, instance[key]) for key in extras(instance)])

        return check

    def _k_propertyNames(self, value: Any, schema: dict[str, Any]) -> Check:
        sub = self.compile(value)

        def check(instance: Any) -> bool:
            if not isinstance(instance, dict):
                return True
            return _each([(sub, key) for key in instance])

        return check

    def _k_required(self, value: Any, schema: dict[str, Any]) -> Check:
        if not isinstance(value, list):
            return _unsure
        names = list(value)
        return lambda instance: not isinstance(instance, dict) or all(n in instance for n in names)

    def _k_minProperties(self, value: Any, schema: dict[str, Any]) -> Check:
        return _size(value, dict, at_least=True)

    def _k_items(self, value: Any, schema: dict[str, Any]) -> Check:
        if "prefixItems" in schema:
            return _unsure  # items then only covers what prefixItems does not
        sub = self.compile(value)

        def check(instance: Any) -> bool:
            if not isinstance(instance, list):
                return True
            return _each([(sub, item) for item in instance])

        return check

    def _k_minItems(self, value: Any, schema: dict[str, Any]) -> Check:
        return _size(value, list, at_least=True)

    def _k_maxItems(self, value: Any, schema: dict[str, Any]) -> Check:
        return _size(value, list, at_least=False)

    def _k_uniqueItems(self, value: Any, schema: dict[str, Any]) -> Check:
        if not isinstance(value, bool):
            return _unsure
        if not value:
            return _true

        def check(instance: Any) -> bool:
            if not isinstance(instance, list):
                return True
            return len({_unique_key(item) for item in instance}) == len(instance)

        return check

    def _k_minLength(self, value: Any, schema: dict[str, Any]) -> Check:
        return _size(value, str, at_least=True)

    def _k_maxLength(self, value: Any, schema: dict[str, Any]) -> Check:
        return _size(value, str, at_least=False)

    def _k_pattern(self, value: Any, schema: dict[str, Any]) -> Check:
        regex = _regex(value)
        if regex is None:
            return _unsure
        return lambda instance: not isinstance(instance, str) or bool(regex.search(instance))

    def _bound(self, value: Any, passes: Callable[[Any, Any], bool]) -> Check:
        if not isinstance(value, int | float) or isinstance(value, bool):
            return _unsure
        return lambda instance: not _is_number(instance) or passes(instance, value)

    def _k_minimum(self, value: Any, schema: dict[str, Any]) -> Check:
        return self._bound(value, lambda instance, limit: not instance < limit)

    def _k_maximum(self, value: Any, schema: dict[str, Any]) -> Check:
        return self._bound(value, lambda instance, limit: not instance > limit)

    def _k_exclusiveMinimum(self, value: Any, schema: dict[str, Any]) -> Check:
        return self._bound(value, lambda instance, limit: not instance <= limit)

    def _k_exclusiveMaximum(self, value: Any, schema: dict[str, Any]) -> Check:
        return self._bound(value, lambda instance, limit: not instance >= limit)

    def _k_format(self, value: Any, schema: dict[str, Any]) -> Check:
        if self.formats is None:
            return _true  # no format checker: an annotation
        test = self.formats.get(value) if isinstance(value, str) else None
        if test is None:
            return _unsure  # jsonschema's checker may know it (email, date...)
        function, raises = test

        def check(instance: Any) -> bool:
            try:
                return bool(function(instance))
            except raises:
                return False
            except Exception as exc:  # jsonschema would let it through, not answer
                raise Unsure from exc

        return check

    def _k_allOf(self, value: Any, schema: dict[str, Any]) -> Check:
        if not isinstance(value, list) or not value:
            return _unsure
        return _all([self.compile(sub) for sub in value])

    def _k_anyOf(self, value: Any, schema: dict[str, Any]) -> Check:
        if not isinstance(value, list) or not value:
            return _unsure
        branches = [self.compile(sub) for sub in value]

        def check(instance: Any) -> bool:
            unsure = False
            for branch in branches:
                try:
                    if branch(instance):
                        return True
                except Unsure:
                    unsure = True  # not a failure: a later branch may still pass
            if unsure:
                raise Unsure
            return False

        return check

    def _k_oneOf(self, value: Any, schema: dict[str, Any]) -> Check:
        if not isinstance(value, list) or not value:
            return _unsure
        branches = [self.compile(sub) for sub in value]

        def check(instance: Any) -> bool:
            passed = 0
            unsure = False
            for branch in branches:
                try:
                    passed += branch(instance)
                except Unsure:
                    unsure = True
                if passed > 1:
                    return False  # whatever the doubtful ones say
            if unsure:
                raise Unsure
            return passed == 1

        return check

    def _k_dollar_ref(self, value: Any, schema: dict[str, Any]) -> Check:
        target = self._resolve(value)
        if target is None:
            return _unsure
        return self.compile(target)

    def _resolve(self, ref: Any) -> Any:
        """A JSON pointer into the root schema ("#", "#/$defs/step"); None for
        anything else (other documents, anchors, escapes to decode)."""
        if not isinstance(ref, str) or not (ref == "#" or ref.startswith("#/")) or "%" in ref:
            return None
        node: Any = self.root
        for part in ref[2:].split("/") if ref != "#" else []:
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return None
        return node


#: each keyword quickcheck decides, and the method compiling it (`_k_<keyword>`)
_KEYWORDS: dict[str, Callable[[_Compiler, Any, dict[str, Any]], Check]] = {
    name.removeprefix("_k_").replace("dollar_", "$"): method
    for name, method in vars(_Compiler).items()
    if name.startswith("_k_")
}
