"""The fast paths of validation give exactly what the slow ones gave: libyaml's
parser the same values and positions as the pure-Python one (and the same
messages, which it leaves to the pure-Python parser), the `{{ name }}` lookup and
the cached compiled expressions the same values and errors as Jinja."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.playbook import template, yamlpos
from runner.playbook.yamlpos import PosDict, PosList, YamlSyntaxError, load_positioned
from tests.helpers import PLAYBOOKS_DIR

pytestmark = pytest.mark.skipif(not yaml.__with_libyaml__, reason="needs libyaml")


def _shape(value: Any) -> Any:
    """A value with every position it carries, for comparing two loads."""
    if isinstance(value, PosDict):
        return (
            value.mark,
            value.key_marks,
            value.value_marks,
            value.duplicates,
            {key: _shape(item) for key, item in value.items()},
        )
    if isinstance(value, PosList):
        return (value.mark, value.item_marks, [_shape(item) for item in value])
    return (type(value).__name__, value)


def _both(text: str) -> tuple[Any, Any]:
    fast = yamlpos._FastPositionedLoader(text)
    slow = yamlpos.PositionedLoader(text)
    try:
        return _shape(fast.get_single_data()), _shape(slow.get_single_data())
    finally:
        fast.dispose()
        slow.dispose()


@pytest.mark.parametrize("playbook", sorted(PLAYBOOKS_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_the_shipped_playbooks_load_the_same_with_both_parsers(playbook: Path) -> None:
    fast, slow = _both(playbook.read_text(encoding="utf-8"))
    assert fast == slow


scalars = st.one_of(
    st.integers(),
    st.booleans(),
    st.none(),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12),
)
documents = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text("abcdéü_", min_size=1, max_size=6), children, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=150, deadline=None)
@given(documents, st.booleans())
def test_any_document_loads_the_same_with_both_parsers(data: Any, flow: bool) -> None:
    text = yaml.safe_dump({"root": data, "after": [1, "é"]}, default_flow_style=flow)
    fast, slow = _both(text)
    assert fast == slow


def test_a_duplicate_key_and_bad_yaml_are_reported_as_before() -> None:
    _data, problems = load_positioned("a: 1\nb: 2\na: 3\n")
    assert [(p.mark.line, p.mark.col, p.message) for p in problems] == [
        (3, 1, "duplicate key 'a' (first defined at line 1)")
    ]
    with pytest.raises(YamlSyntaxError) as caught:
        load_positioned("a: [1, 2\nb: 3\n")
    # the pure-Python parser's position (libyaml's would differ) and the tailored message
    problem = caught.value.problem
    assert (problem.mark.line, problem.mark.col) == (2, 2)
    assert problem.message.startswith("YAML syntax error: the [ opened at line 1, column 4")


@pytest.mark.parametrize(
    ("text", "context"),
    [
        ("{{ name }}", {"name": [1, {"a": 2}]}),
        (" {{name}} ", {"name": 7}),
        ("{{ true }}", {"true": "not me"}),
        ("{{ None }}", {}),
        ("{{ range }}", {}),
        ("{{ missing }}", {"other": 1}),
        ("{{ a if a else b }}", {"a": 0, "b": "x"}),
        ("{{ a | int + 1 }}", {"a": "41"}),
        ("volume {{ v }}", {"v": "VOL1"}),
        ("{{ a.__class__ }}", {"a": 1}),
        ("{{ (", {}),
    ],
)
def test_fast_and_cached_expressions_give_what_jinja_gives(
    text: str, context: dict[str, Any]
) -> None:
    def jinja() -> Any:
        match = template._SINGLE_EXPRESSION.match(text)
        with template.expression_budget():
            if match:
                compiled = template._ENV.compile_expression(
                    match.group("expr"), undefined_to_none=False
                )
                result = compiled(**context)
                if isinstance(result, template.StrictUndefined):
                    str(result)
                return result
            return template._ENV.from_string(text).render(**context)

    try:
        expected: Any = ("value", jinja())
    except Exception as exc:
        expected = ("error", template._describe(exc))
    for _ in range(2):  # the second time from the caches
        try:
            got: Any = ("value", template.render_string(text, context))
        except template.TemplateProblem as exc:
            got = ("error", str(exc))
        if callable(expected[1]):
            assert callable(got[1])
        else:
            assert got == expected
