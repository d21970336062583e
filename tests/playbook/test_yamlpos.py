"""The positioned YAML loader: marks for every node, duplicates, merges, anchors."""

from __future__ import annotations

import string
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.playbook.yamlpos import (
    Mark,
    PosDict,
    PosList,
    YamlSyntaxError,
    load_positioned,
    mark_for_path,
)
from tests.helpers import pos


def _at(text: str, mark: Mark) -> str:
    return text.splitlines()[mark.line - 1][mark.col - 1 :]


def _walk(node: Any, path: tuple[str | int, ...] = ()) -> Any:
    """Yield (path, container, key) for every entry of every mapping and list."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*path, key), node, key
            yield from _walk(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield (*path, index), node, index
            yield from _walk(value, (*path, index))


def test_every_mapping_and_list_knows_where_its_entries_are() -> None:
    text = (
        "top:\n"
        "  name: alpha\n"
        "  items:\n"
        "    - one\n"
        "    - {k: 2, j: [x, y]}\n"
        "flow: {a: 1, b: [true, null]}\n"
    )
    data, problems = load_positioned(text)
    assert problems == []
    assert data == yaml.safe_load(text)
    assert isinstance(data, PosDict) and data.mark == Mark(1, 1)
    assert data.key_marks["top"] == Mark(1, 1)
    assert data["top"].value_marks["name"] == Mark(*pos(text, "alpha"))
    assert data["top"].key_marks["items"] == Mark(*pos(text, "items"))
    items = data["top"]["items"]
    assert isinstance(items, PosList)
    assert items.item_marks == [Mark(*pos(text, "one")), Mark(*pos(text, "{k: 2"))]
    assert items[1].key_marks["j"] == Mark(*pos(text, "j:"))
    assert items[1]["j"].item_marks == [Mark(*pos(text, "x, y")), Mark(*pos(text, "y]"))]
    assert data["flow"].value_marks["b"] == Mark(*pos(text, "[true"))
    # every container carries complete marks
    for _, container, key in _walk(data):
        if isinstance(container, PosDict):
            assert key in container.key_marks and key in container.value_marks
        else:
            assert len(container.item_marks) == len(container)


def test_mark_for_path_points_at_value_key_or_nearest_parent() -> None:
    text = "steps:\n  - id: first\n    args:\n      batch: 13\n"
    data, _ = load_positioned(text)
    path = ("steps", 0, "args", "batch")
    assert mark_for_path(data, path) == Mark(*pos(text, "13"))
    assert mark_for_path(data, path, key=True) == Mark(*pos(text, "batch"))
    # missing parts: the deepest part that exists
    assert mark_for_path(data, ("steps", 0, "args", "nope")) == Mark(*pos(text, "batch"))
    assert mark_for_path(data, ("steps", 7, "id")) == Mark(*pos(text, "- id"))
    assert mark_for_path(data, ()) == Mark(1, 1)
    assert mark_for_path(None, ("x",)) == Mark(1, 1)


def test_duplicate_keys_are_reported_at_the_second_one_with_the_first_line() -> None:
    text = "a: 1\nb:\n  x: 1\n  y: 2\n  x: 3\na: 4\nl:\n  - {k: 1, k: 2}\n"
    data, problems = load_positioned(text)
    found = {(p.path, p.mark) for p in problems}
    assert found == {
        (("a",), Mark(6, 1)),
        (("b", "x"), Mark(5, 3)),
        (("l", 0, "k"), Mark(*pos(text, "k: 2"))),
    }
    by_path = {p.path: p for p in problems}
    assert "first defined at line 1" in by_path[("a",)].message
    assert "first defined at line 3" in by_path[("b", "x")].message
    assert all(p.fix for p in problems)
    # the first value is kept, not silently replaced
    assert data["a"] == 1 and data["b"]["x"] == 1


def test_merge_keys_are_expanded_and_overriding_them_is_not_a_duplicate() -> None:
    text = "base: &base\n  batch: 10\n  report: r.txt\nstep:\n  <<: *base\n  batch: 20\n"
    data, problems = load_positioned(text)
    assert problems == []
    assert data["step"] == {"batch": 20, "report": "r.txt"}
    assert "<<" not in data["step"]
    # the merged key points at where it was written (in the anchor)
    assert data["step"].key_marks["report"] == Mark(3, 3)
    assert data["step"].key_marks["batch"] == Mark(6, 3)


def test_explicit_duplicate_after_a_merge_is_still_reported() -> None:
    text = "base: &b {x: 1}\nm:\n  <<: *b\n  y: 1\n  y: 2\n"
    _, problems = load_positioned(text)
    assert [(p.path, p.mark) for p in problems] == [(("m", "y"), Mark(5, 3))]


def test_merge_of_a_list_of_mappings() -> None:
    text = "a: &a {x: 1}\nb: &b {y: 2, x: 9}\nc:\n  <<: [*a, *b]\n  z: 3\n"
    data, problems = load_positioned(text)
    assert problems == []
    assert data["c"] == yaml.safe_load(text)["c"] == {"x": 1, "y": 2, "z": 3}


def test_anchors_and_aliases_load_like_pyyaml() -> None:
    text = "defs: &d [1, 2, {k: v}]\nuse: *d\nagain: *d\n"
    data, problems = load_positioned(text)
    assert problems == []
    assert data == yaml.safe_load(text)
    assert data["use"].item_marks == data["defs"].item_marks


def test_keys_that_are_not_strings_become_strings() -> None:
    data, _ = load_positioned("1: a\ntrue: b\nnull: c\n")
    assert set(data) == {"1", "True", "None"}


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("a: [1, 2\n", 2),
        ("a: 1\n b: 2\n", 2),
        ("a:\n\t- x\n", 2),
        ("a: 'unterminated\n", 1),
        ("? [a, b]\n: 1\n", 1),  # unhashable key
        ("a: !!python/object:os.system x\n", 1),  # the safe loader refuses it
        ("--- 1\n--- 2\n", 2),  # more than one document
        ("a: &a 1\nb:\n  <<: *a\n", 1),  # merging a scalar: points at the scalar
        ("a: *nowhere\n", 1),  # undefined alias
    ],
)
def test_bad_yaml_is_one_positioned_problem(text: str, line: int) -> None:
    with pytest.raises(YamlSyntaxError) as info:
        load_positioned(text)
    problem = info.value.problem
    assert problem.mark.line == line
    assert problem.message.startswith("YAML")
    assert problem.mark.col >= 1


# -- property-based ---------------------------------------------------------------

_KEYS = st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=8).filter(
    lambda k: k not in ("y", "n", "yes", "no", "on", "off", "true", "false", "null")
)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.text(alphabet=string.ascii_letters + " -_./{}:#'\"", max_size=12),
)
_TREES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(_KEYS, inner, min_size=1, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=st.dictionaries(_KEYS, _TREES, min_size=1, max_size=5), flow=st.booleans())
def test_loads_exactly_what_pyyaml_loads_with_a_mark_on_every_key(
    tree: dict[str, Any], flow: bool
) -> None:
    text = yaml.safe_dump(tree, default_flow_style=flow, sort_keys=False, width=60)
    data, problems = load_positioned(text)
    assert problems == []
    assert data == yaml.safe_load(text) == tree
    for path, container, key in _walk(data):
        if isinstance(container, PosDict):
            written = _at(text, container.key_marks[key])
            assert written.lstrip("'\"").startswith(key), (path, written)
            assert mark_for_path(data, path, key=True) == container.key_marks[key]
            assert mark_for_path(data, path) == container.value_marks[key]
        else:
            assert mark_for_path(data, path) == container.item_marks[key]
        value = container[key]
        if isinstance(value, (PosDict, PosList)) and (value or not flow):
            # a non-empty container's own mark is where its value starts
            where = (
                container.value_marks[key]
                if isinstance(container, PosDict)
                else container.item_marks[key]
            )
            assert value.mark == where


@settings(max_examples=100, deadline=None)
@given(
    keys=st.lists(_KEYS, min_size=1, max_size=6, unique=True),
    dup=st.integers(0, 5),
    indent=st.integers(0, 2),
)
def test_a_key_written_twice_is_always_reported_once(
    keys: list[str], dup: int, indent: int
) -> None:
    again = keys[dup % len(keys)]
    lines = [f"{k}: {i}" for i, k in enumerate(keys)] + [f"{again}: dup"]
    pad = " " * indent
    text = "outer:\n" + "".join(f"  {pad}{line}\n" for line in lines)
    data, problems = load_positioned(text)
    assert len(problems) == 1
    (problem,) = problems
    assert problem.path == ("outer", again)
    assert problem.mark == Mark(len(lines) + 1, 3 + indent)
    first_line = keys.index(again) + 2
    assert f"first defined at line {first_line}" in problem.message
    assert data["outer"][again] == keys.index(again)
