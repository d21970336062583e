"""Property: whatever a playbook holds, validate answers with positioned diagnostics
(or a model), never an exception."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.playbook.validate import check_playbook
from runner.procedures import EXTRA_ENV, load_registry
from tests.helpers import TOY_MODULE, TOY_PLAYBOOK

REGISTRY = load_registry({EXTRA_ENV: TOY_MODULE})

pytestmark = pytest.mark.usefixtures("toy_env")

_TEXT = st.text(alphabet=string.ascii_letters + string.digits + " _.-/{}%|'\"()[]*+", max_size=16)
_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=False), _TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_TEXT, inner, max_size=3)),
    max_leaves=8,
)


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += _paths(value, (*path, index))
    return out


@st.composite
def _mutated(draw: st.DrawFn) -> dict[str, Any]:
    data = yaml.safe_load(TOY_PLAYBOOK)
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in _paths(data) if p]
        path = draw(st.sampled_from(paths))
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(_VALUES)
    return data


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=_mutated(), flow=st.booleans())
def test_validate_never_crashes_and_always_points_somewhere(
    tmp_path: Path, data: dict[str, Any], flow: bool
) -> None:
    text = yaml.safe_dump(data, default_flow_style=flow, sort_keys=False)
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    playbook, found = check_playbook(path, REGISTRY)
    assert (playbook is None) == any(d.severity == "error" for d in found)
    assert all(d.rule is not None for d in found)
    lines = text.count("\n") + 1
    for diagnostic in found:
        assert 1 <= diagnostic.line <= lines and diagnostic.col >= 1, diagnostic
        assert diagnostic.json_path.startswith("$") and diagnostic.message
        assert diagnostic.render().startswith(f"{path}:{diagnostic.line}:{diagnostic.col}: ")
