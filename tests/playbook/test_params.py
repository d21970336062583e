"""`--param NAME=VALUE`: conversion to the declared type, unknown and missing params."""

from __future__ import annotations

import math
import string
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.cli import _params
from runner.errors import UsageError
from runner.playbook.model import Param, Playbook, convert_param, type_matches

KINDS = ("string", "integer", "number", "boolean", "list", "object")


def _param(kind: str) -> Param:
    return Param("p", kind)


def _playbook(**params: Param) -> Playbook:
    return Playbook(
        path=Path("pb.yaml"),
        name="pb",
        description="",
        params=params,
        site={},
        allow_loss={},
        confirm=[],
        steps=[],
        text="",
    )


@pytest.mark.parametrize(
    ("kind", "raw", "expected"),
    [
        ("integer", "20", 20),
        ("integer", "-3", -3),
        ("number", "1.5", 1.5),
        ("number", "2", 2.0),
        ("boolean", "true", True),
        ("boolean", "false", False),
        ("list", "[{begin: 5}]", [{"begin": 5}]),
        ("list", "[]", []),
        ("object", "{a: 1, b: [x]}", {"a": 1, "b": ["x"]}),
        ("string", "20", "20"),
        ("string", "true", "true"),
        ("string", "[a, b]", "[a, b]"),
        ("string", "", ""),
        ("string", "  spaced = text  ", "  spaced = text  "),
    ],
)
def test_convert_param(kind: str, raw: str, expected: Any) -> None:
    value = convert_param(_param(kind), raw)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(
    ("kind", "raw"),
    [
        ("integer", "1.5"),
        ("integer", "true"),
        ("integer", "abc"),
        ("integer", ""),
        ("number", "yes"),
        ("boolean", "1"),
        ("list", "a"),
        ("list", "{a: 1}"),
        ("object", "[1]"),
        ("integer", "[1, 2"),
        ("integer", "!!binary x"),
        ("integer", "!!python/object:os.system x"),
    ],
)
def test_wrong_types_are_usage_errors_with_an_example(kind: str, raw: str) -> None:
    with pytest.raises(UsageError) as info:
        convert_param(_param(kind), raw)
    assert info.value.exit_code == 2
    assert "--param p" in info.value.message


def test_an_impossible_date_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        convert_param(_param("integer"), "2020-13-45")


def test_resolve_params_overrides_defaults_and_requires_the_rest() -> None:
    playbook = _playbook(
        jobs=Param("jobs", "integer", 50, True), volume=Param("volume", "string", None, False)
    )
    assert playbook.resolve_params({"volume": "VOL1"}) == {"volume": "VOL1", "jobs": 50}
    assert playbook.resolve_params({"volume": "V", "jobs": "7"}) == {"volume": "V", "jobs": 7}
    with pytest.raises(UsageError, match="'volume' has no default") as info:
        playbook.resolve_params({})
    assert info.value.fix == "add --param volume=VALUE"
    with pytest.raises(UsageError, match="did you mean 'jobs'"):
        playbook.resolve_params({"volume": "V", "job": "1"})
    with pytest.raises(UsageError, match="declared params: jobs, volume"):
        playbook.resolve_params({"volume": "V", "zzzzzz": "1"})
    with pytest.raises(UsageError, match="declared params: none"):
        _playbook().resolve_params({"x": "1"})


def test_cli_param_syntax() -> None:
    assert _params(("a=1", "b=x=y", " c =", "a=2")) == {"a": "2", "b": "x=y", "c": ""}
    for bad in ("novalue", "=5", " =5"):
        with pytest.raises(UsageError) as refused:
            _params((bad,))
        assert refused.value.exit_code == 2
        assert refused.value.fix == (
            "write --param NAME=VALUE, with NAME from the playbook's params: section"
        )


# -- property-based ---------------------------------------------------------------

_NAMES = st.text(alphabet=string.ascii_letters + "_", min_size=1, max_size=10)
_JSONISH = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False),
        st.text(max_size=10),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(name=_NAMES, value=st.text().filter(lambda v: not v.startswith("@")))
def test_cli_splits_at_the_first_equals_sign(name: str, value: str) -> None:
    assert _params((f"{name}={value}",)) == {name: value}


@settings(max_examples=100, deadline=None)
@given(name=_NAMES, value=st.text())
def test_a_value_starting_with_at_is_written_with_two(name: str, value: str) -> None:
    """NAME=@FILE reads a file; NAME=@@TEXT is the text @TEXT, whatever follows."""
    assert _params((f"{name}=@@{value}",)) == {name: "@" + value}


@settings(max_examples=200, deadline=None)
@given(raw=st.text().filter(lambda text: "\x00" not in text))
def test_a_string_param_takes_the_text_as_is(raw: str) -> None:
    assert convert_param(_param("string"), raw) == raw


@pytest.mark.parametrize("kind", ["string", "integer", "list"])
def test_a_nul_byte_in_a_param_is_a_usage_error(kind: str) -> None:
    with pytest.raises(UsageError) as refused:
        convert_param(_param(kind), "a\x00b")
    assert "contains a NUL byte" in refused.value.message
    assert refused.value.fix == "give the value without the NUL byte"


@settings(max_examples=200, deadline=None)
@given(value=st.integers())
def test_integers_round_trip(value: int) -> None:
    assert convert_param(_param("integer"), str(value)) == value
    assert convert_param(_param("number"), str(value)) == float(value)


@settings(max_examples=200, deadline=None)
@given(value=st.floats(allow_nan=False))
def test_numbers_round_trip(value: float) -> None:
    assert convert_param(_param("number"), yaml.safe_dump(value).split("\n")[0]) == value


@settings(max_examples=200, deadline=None)
@given(
    value=st.one_of(
        st.lists(_JSONISH, max_size=4), st.dictionaries(st.text(max_size=5), _JSONISH, max_size=4)
    ),
    flow=st.booleans(),
)
def test_lists_and_objects_round_trip_through_yaml(value: Any, flow: bool) -> None:
    kind = "list" if isinstance(value, list) else "object"
    raw = yaml.safe_dump(value, default_flow_style=flow)
    assert convert_param(_param(kind), raw) == value


_NO_DATES = st.text().filter(lambda t: not any(c.isdigit() for c in t) or "-" not in t)


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(KINDS[1:]), raw=_NO_DATES)
def test_any_text_converts_to_the_declared_type_or_is_a_usage_error(kind: str, raw: str) -> None:
    try:
        value = convert_param(_param(kind), raw)
    except UsageError as exc:
        assert exc.exit_code == 2
        return
    assert type_matches(kind, value)
    if kind == "number":
        assert isinstance(value, float) or math.isnan(value)
