"""quickcheck answers exactly as jsonschema does, or not at all.

Its one promise: True only where Draft202012Validator (with validate's format
checker) finds no error, False only where it finds one, None (unsure) for
anything else. Checked on generated instances of every shipped schema, on
every shipped and documented playbook (all True, so `recover validate` on them
never imports jsonschema), and on the bad-input corpus (never True).
"""

from __future__ import annotations

import copy
import json
import math
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from runner.errors import SiteError
from runner.playbook import validate
from runner.playbook.quickcheck import is_valid
from runner.playbook.schema import core_schema
from runner.playbook.validate import FORMATS, check_playbook
from runner.procedures import load_registry
from tests.helpers import PLAYBOOKS_DIR, PROJECT_ROOT, SCHEMAS_DIR, process_env
from tests.playbook.test_bundle_agreement import SCHEMA_LEVEL, _docs_examples, _mutations
from tests.test_bad_input_corpus import PROCEDURES, TEXT_EDITS

REGISTRY = load_registry({})
SCHEMAS: dict[str, dict[str, Any]] = {
    "core": core_schema(),
    **{name: REGISTRY.action_schema(name) for name in sorted(REGISTRY.actions)},
}


def _truth(schema: Any, instance: Any, formats: bool = True) -> bool:
    """jsonschema's verdict, as validate (formats checked) or a run (not) asks it."""
    checker = validate._formats() if formats else None
    return not any(Draft202012Validator(schema, format_checker=checker).iter_errors(instance))


def _exotic(value: Any, in_list: bool = False) -> bool:
    """Where quickcheck may rightly be unsure on the shipped schemas: a float
    anywhere (1.0 is an integer in 2020-12), a container inside a list
    (jsonschema's uniqueItems compares those in its own way)."""
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return in_list or any(_exotic(v) for v in value.values())
    if isinstance(value, list):
        return in_list or any(_exotic(v, in_list=True) for v in value)
    return False


# -- instances ---------------------------------------------------------------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.floats(allow_nan=True)
    | st.integers(-3, 3).map(float)
    | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
GOOD_PATHS = ["reports", "reports/pre.txt", "a/../b", "{{ where }}/x.txt", "x" * 255]
#: and bad ones: leaving the site, absolute, the state directory, a name too long...
BAD_PATHS = ["../outside", "/etc/passwd", "C:x", ".recover/journal", ".", "", "a\x00b"]
BAD_PATHS += ["reports/" + "x" * 300]


class _Instances:
    """Values built from a schema: `exact` ones keep to every bound (most are
    valid), the others stray just past them and now and then are any JSON."""

    def __init__(self, root: dict[str, Any], exact: bool) -> None:
        self.root = root
        self.exact = exact

    def of(self, schema: Any, depth: int = 0) -> st.SearchStrategy[Any]:
        if not isinstance(schema, dict) or depth > 5:
            return JSON
        if "$ref" in schema:
            return self.of(self._resolve(schema["$ref"]), depth + 1)
        forms: list[st.SearchStrategy[Any]] = []
        if "const" in schema:
            forms.append(st.just(schema["const"]))
        if "enum" in schema:
            forms.append(st.sampled_from(schema["enum"]))
        if forms and self.exact:
            return st.one_of(*forms)
        for key in ("anyOf", "oneOf"):
            forms += [self.of(sub, depth + 1) for sub in schema.get(key, [])]
        types = schema.get("type", [])
        for kind in [types] if isinstance(types, str) else types:
            forms.append(self._typed(kind, schema, depth))
        if not forms or not self.exact:
            forms.append(JSON)
        return st.one_of(*forms)

    def _resolve(self, ref: str) -> Any:
        node: Any = self.root
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        return node

    def _between(self, low: int | None, high: int | None, slack: int) -> st.SearchStrategy[int]:
        """Integers within the bounds, and `slack` past them (where off-by-ones live)."""
        start = low if low is not None else (high - 8 if high is not None else -3)
        end = high if high is not None else start + 8
        edges = st.sampled_from([start - slack, start, end, end + slack])
        return st.integers(start - slack, end + slack) | edges

    def _typed(self, kind: str, schema: dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
        slack = 0 if self.exact else 2
        if kind == "string":
            if schema.get("format") == "site-path":
                return st.sampled_from(GOOD_PATHS if self.exact else GOOD_PATHS + BAD_PATHS)
            low = schema.get("minLength", 0)
            high = schema.get("maxLength", low + 8)
            texts = st.text(min_size=max(0, low - slack), max_size=min(high, 70) + slack)
            # text is short on average: also the lengths at the bounds, and just past them
            edges = [n for n in (low - slack, low, high, high + slack) if n >= 0]
            texts |= st.sampled_from(edges).map(lambda n: "a" * n)
            if "pattern" in schema:
                matching = st.from_regex(schema["pattern"], fullmatch=True)
                if self.exact:
                    return (matching | texts).filter(
                        lambda text: low <= len(text) <= high and re.search(schema["pattern"], text)
                    )
                return matching | texts
            return texts
        if kind in ("integer", "number"):
            ints = self._between(schema.get("minimum"), schema.get("maximum"), slack)
            return ints if self.exact else ints | ints.map(float) | st.floats()
        if kind == "boolean":
            return st.booleans() if self.exact else st.booleans() | st.sampled_from([0, 1])
        if kind == "null":
            return st.none()
        if kind == "array":
            items = self.of(schema.get("items", True), depth + 1)
            low = schema.get("minItems", 0)
            high = schema.get("maxItems", low + 3)
            unique = bool(schema.get("uniqueItems")) and self.exact
            lists = st.lists(
                items,
                min_size=max(0, low - slack),
                max_size=min(high, low + 3) + slack,
                unique=unique,
            )
            return lists if self.exact else lists | lists.map(lambda found: found + found[:1])
        if kind == "object":
            return self._object(schema, depth)
        raise AssertionError(f"no generator for type {kind!r}")

    def _object(self, schema: dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
        props = schema.get("properties", {})
        required = [name for name in schema.get("required", []) if name in props]
        known = st.fixed_dictionaries(
            {name: self.of(props[name], depth + 1) for name in required},
            optional={
                name: self.of(sub, depth + 1) for name, sub in props.items() if name not in required
            },
        )
        names = schema.get("propertyNames", {}).get("pattern")
        keys = st.from_regex(names, fullmatch=True) if names else st.text(max_size=8)
        extra = schema.get("additionalProperties", True)
        if self.exact and extra is False:
            return known
        if not self.exact:
            keys = keys | st.sampled_from(["1bad", "version", "args"])
        extras = st.dictionaries(
            keys, self.of(extra, depth + 1) if isinstance(extra, dict) else JSON, max_size=2
        )

        def merge(parts: tuple[dict[str, Any], dict[str, Any], int]) -> dict[str, Any]:
            found, more, drop = parts
            merged = {**more, **found}
            if not self.exact and drop < len(required):  # now and then, one missing
                merged.pop(required[drop], None)
            return merged

        sometimes = st.just({}) | st.just({}) | extras
        return st.tuples(known, sometimes, st.integers(0, 3 * len(required) + 2)).map(merge)


def _built_from(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    return _Instances(schema, exact=True).of(schema) | _Instances(schema, exact=False).of(schema)


# -- agreement on generated instances ----------------------------------------------


def test_every_shipped_schema_is_covered() -> None:
    files = {
        p.name.removesuffix(".schema.json") for p in (SCHEMAS_DIR / "actions").glob("*.schema.json")
    }
    assert files == set(SCHEMAS) - {"core"}
    for name in files:  # the registry's schema is the shipped file's content
        shipped = json.loads((SCHEMAS_DIR / "actions" / f"{name}.schema.json").read_text())
        assert SCHEMAS[name] == shipped


def _agrees(schema: dict[str, Any], instance: Any, formats: bool = True) -> None:
    answer = is_valid(schema, instance, FORMATS if formats else None)
    truth = _truth(schema, instance, formats)
    event(f"truth={truth} answer={answer}")
    assert answer in (truth, None), (instance, answer, truth)
    if not _exotic(instance):
        assert answer is truth, instance  # unsure only where the schemas are subtle


@pytest.mark.parametrize("name", sorted(SCHEMAS))
@settings(max_examples=70, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_agrees_with_jsonschema_on_instances_built_from_the_schema(
    name: str, data: st.DataObject
) -> None:
    schema = SCHEMAS[name]
    _agrees(schema, data.draw(_built_from(schema)))


@pytest.mark.parametrize("name", sorted(SCHEMAS))
@settings(max_examples=25, deadline=None)
@given(instance=JSON)
def test_agrees_with_jsonschema_on_arbitrary_json(name: str, instance: Any) -> None:
    _agrees(SCHEMAS[name], instance)


@pytest.mark.parametrize("name", ["core", "archive.scan_volume", "pools.fix"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_agrees_without_a_format_checker_as_runs_ask(name: str, data: st.DataObject) -> None:
    """plan and run check rendered arguments with no format checker: `format`
    is then an annotation, a path leaving the site no schema error."""
    schema = SCHEMAS[name]
    _agrees(schema, data.draw(_built_from(schema)), formats=False)


# -- the keyword subset's edges, one by one -----------------------------------------

EDGES: list[tuple[str, Any, Any, bool | None]] = [
    # (what, schema, instance, quickcheck's answer); jsonschema agrees wherever not None
    ("unknown keyword", {"type": "object", "dependentRequired": {"a": ["b"]}}, {"a": 1}, None),
    ("unknown keyword beside a failure", {"type": "string", "if": {}}, 1, False),
    ("unknown format", {"format": "email"}, "x", None),
    ("'ref' is not '$ref'", {"ref": "#/$defs/a", "$defs": {"a": False}}, 1, None),
    ("a non-local $ref", {"$ref": "other.json#/$defs/x"}, 1, None),
    ("an anchor $ref", {"$ref": "#thing"}, 1, None),
    ("a nested $id", {"properties": {"a": {"$id": "x", "type": "string"}}}, {"a": "s"}, None),
    (
        "a nested $id beside a failure",
        {"properties": {"a": {"$id": "x", "type": "string"}}},
        {"a": 1},
        False,
    ),
    ("another draft", {"$schema": "http://json-schema.org/draft-07/schema#"}, 1, None),
    ("items beside prefixItems", {"prefixItems": [{}], "items": False}, [1, 2], None),
    ("an integral float as an integer", {"type": "integer"}, 1.0, None),
    ("a fraction as an integer", {"type": "integer"}, 1.5, False),
    ("a float as a number", {"type": "number", "minimum": 1}, 1.5, True),
    ("an integer is a number", {"type": ["null", "number"]}, 3, True),
    ("too many items", {"maxItems": 1, "minItems": 1}, [1, 2], False),
    ("enough items", {"maxItems": 1, "minItems": 1}, [1], True),
    ("too few properties", {"minProperties": 2}, {"a": 1}, False),
    ("exclusive bounds", {"exclusiveMinimum": 1, "exclusiveMaximum": 3}, 3, False),
    ("within exclusive bounds", {"exclusiveMinimum": 1, "exclusiveMaximum": 3}, 2, True),
    ("True is not an integer", {"type": "integer"}, True, False),
    ("True is not const 1", {"const": 1}, True, False),
    ("1 is not in enum [true]", {"enum": [True]}, 1, False),
    ("minimum skips booleans", {"minimum": 5}, True, True),
    ("a float against const", {"const": 1}, 1.0, None),
    ("uniqueItems: True and 1 differ", {"uniqueItems": True}, [True, 1], True),
    ("uniqueItems: a repeat", {"uniqueItems": True}, ["a", "b", "a"], False),
    ("uniqueItems over containers", {"uniqueItems": True}, [[1], [True], [1]], None),
    ("a bad regex", {"pattern": "("}, "x", None),
    ("pattern searches", {"pattern": "b"}, "abc", True),
    (
        "additionalProperties: patterns joined",
        {"patternProperties": {"^a": {}}, "additionalProperties": False},
        {"ab": 1, "b": 2},
        False,
    ),
    ("anyOf: unsure then failing", {"anyOf": [{"type": "integer"}, {"type": "string"}]}, 1.0, None),
    ("anyOf: unsure then passing", {"anyOf": [{"type": "integer"}, {"type": "number"}]}, 1.0, True),
    ("oneOf: two pass, one unsure", {"oneOf": [{}, {"type": "integer"}, {}]}, 1.0, False),
    (
        "oneOf: one passes, one unsure",
        {"oneOf": [{"type": "number"}, {"type": "integer"}]},
        1.0,
        None,
    ),
    ("oneOf: none passes", {"oneOf": [{"type": "string"}, {"type": "null"}]}, 1, False),
    (
        "allOf: a failure beats doubt",
        {"allOf": [{"type": "integer"}, {"type": "string"}]},
        1.0,
        False,
    ),
    ("false schema", {"properties": {"a": False}}, {"a": 1}, False),
    ("a date from YAML", {"type": "string"}, yaml.safe_load("2026-01-01"), None),
    (
        "a recursive $ref",
        {"$defs": {"t": {"type": "array", "items": {"$ref": "#/$defs/t"}}}, "$ref": "#/$defs/t"},
        [[[]], [[1]]],
        False,
    ),
    ("$ref to the root", {"type": "array", "items": {"$ref": "#"}}, [[], [[]]], True),
]


@pytest.mark.parametrize(
    ("schema", "instance", "expected"), [e[1:] for e in EDGES], ids=[e[0] for e in EDGES]
)
def test_the_edges_of_the_subset(schema: Any, instance: Any, expected: bool | None) -> None:
    answer = is_valid(schema, instance, FORMATS)
    assert answer is expected
    if answer is not None:
        assert answer is _truth(schema, instance)


def test_site_path_format_is_validates_own_check() -> None:
    schema = {"type": "string", "format": "site-path"}
    assert is_valid(schema, "reports/a.txt", FORMATS) is True
    assert is_valid(schema, "../a.txt", FORMATS) is False  # safe_relpath raises
    assert is_valid(schema, "r/" + "x" * 256, FORMATS) is False  # a name too long raises
    assert is_valid(schema, "../a.txt") is True  # no format checker: an annotation

    def broken(value: object) -> bool:
        raise ValueError(value)  # not one of the exceptions that mean "invalid"

    assert is_valid(schema, "a", {"site-path": (broken, SiteError)}) is None


# -- the playbooks validate sees ------------------------------------------------------


@pytest.fixture
def answers(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, Any, bool | None]]:
    """Every question validate asks quickcheck, with its answer."""
    asked: list[tuple[Any, Any, bool | None]] = []

    def spy(schema: Any, instance: Any, formats: Any = None) -> bool | None:
        answer = is_valid(schema, instance, formats)
        asked.append((schema, copy.deepcopy(instance), answer))
        return answer

    monkeypatch.setattr(validate, "is_valid", spy)
    return asked


def _documented() -> Iterator[tuple[str, str]]:
    for path in sorted(PLAYBOOKS_DIR.glob("*.yaml")):
        yield path.name, path.read_text(encoding="utf-8")
    for name, doc in _docs_examples():
        yield name, yaml.safe_dump(doc, sort_keys=False)


@pytest.mark.parametrize(("name", "text"), list(_documented()), ids=[n for n, _ in _documented()])
def test_shipped_and_documented_playbooks_are_answered_true(
    tmp_path: Path, answers: list[tuple[Any, Any, bool | None]], name: str, text: str
) -> None:
    path = tmp_path / "pb.yaml"
    path.write_text(text, encoding="utf-8")
    playbook, found = check_playbook(path, REGISTRY)
    assert playbook is not None, found
    assert len(answers) == 1 + len(playbook.steps)  # the core schema, then each step's args
    assert [answer for _, _, answer in answers] == [True] * len(answers)


def _bad_playbooks() -> Iterator[tuple[str, bytes]]:
    for proc in PROCEDURES:
        text = (PLAYBOOKS_DIR / proc.playbook).read_bytes()
        for what, edit in TEXT_EDITS.items():
            yield f"{proc.name}-{what}", edit(text)
    base = yaml.safe_load((PLAYBOOKS_DIR / "archive-volume-recovery.yaml").read_text())
    for what, mutate in _mutations():
        doc = copy.deepcopy(base)
        mutate(doc)
        yield f"mutation-{what}", yaml.safe_dump(doc, sort_keys=False).encode()


def test_the_bad_input_corpus_is_never_answered_true_where_jsonschema_errs(
    tmp_path: Path, answers: list[tuple[Any, Any, bool | None]]
) -> None:
    flagged = 0
    for name, text in _bad_playbooks():
        path = tmp_path / "pb.yaml"
        path.write_bytes(text)
        answers.clear()
        _, found = check_playbook(path, REGISTRY)
        for schema, instance, answer in answers:
            assert answer in (_truth(schema, instance), None), name
        if any(d.code in SCHEMA_LEVEL for d in found):
            assert any(answer is not True for _, _, answer in answers), name
            flagged += 1
    assert flagged >= 15  # the corpus really has schema errors in it


# -- what it buys: no jsonschema import -----------------------------------------------

_PROBE = """
import sys
from runner.cli import main
sys.argv = ["recover", *sys.argv[1:]]
try:
    main()
except SystemExit as exc:
    print("exit", exc.code, "jsonschema" in sys.modules, file=sys.stderr)
"""


def _in_a_process(*args: object) -> tuple[str, str]:
    """`recover ARGS` through runner.cli's main: its output, and a last line
    `exit CODE IMPORTED` saying whether jsonschema was imported."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *map(str, args)],
        env=process_env(),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PROJECT_ROOT,
        check=False,
    )
    return done.stdout, done.stderr.strip().splitlines()[-1]


def test_validating_a_shipped_playbook_does_not_import_jsonschema() -> None:
    for path in sorted(PLAYBOOKS_DIR.glob("*.yaml")):
        out, last = _in_a_process("validate", path)
        assert "ok" in out, path
        assert last == "exit 0 False", path


def test_an_invalid_playbook_still_gets_jsonschema_s_explanation(tmp_path: Path) -> None:
    path = tmp_path / "pb.yaml"
    text = (PLAYBOOKS_DIR / "roll-forward.yaml").read_text().replace("version: 1", "version: 2")
    path.write_text(text, encoding="utf-8")
    out, last = _in_a_process("validate", path)
    assert last == "exit 1 True"
    assert "1 was expected" in out


#: a step whose argument is only known once an earlier step ran: checked at plan time
LATE_BAD_ARGUMENT = """\
  - id: again
    action: toy.mark
    args: {batch: "{{ steps.mark.outputs.marked - 1000 }}"}
"""


def test_plan_checks_rendered_arguments_without_jsonschema(toy_playbook: Path) -> None:
    out, last = _in_a_process("plan", toy_playbook)
    assert "Nothing was changed" in out
    assert last == "exit 0 False"
    toy_playbook.write_text(toy_playbook.read_text() + LATE_BAD_ARGUMENT, encoding="utf-8")
    out, last = _in_a_process("plan", toy_playbook)
    assert re.search(
        r"step 'again': arguments are invalid once rendered with these params: "
        r"-\d+ is less than the minimum of 1",
        out,
    ), out
    assert last == "exit 1 True"


def test_nan_and_friends_do_not_confuse_it() -> None:
    for value in (math.nan, math.inf, -math.inf):
        for schema in ({"type": "integer"}, {"minimum": 0}, {"maximum": 0}, {"enum": [1]}):
            answer = is_valid(schema, value, FORMATS)
            assert answer in (_truth(schema, value), None)
