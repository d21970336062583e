"""Bounded arithmetic in the Jinja sandboxes (playbook expressions, report templates)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jinja2.sandbox import SecurityError

from runner.engine.reports import csvrow, make_environment
from runner.playbook.template import TemplateProblem, render_string
from runner.sandbox import MAX_POWER_BITS, MAX_REPEAT_LENGTH, bounded_binop


@pytest.mark.parametrize(
    "expression",
    [
        "{{ 9 ** (9 ** 9) }}",
        "{{ 2 ** 100001 }}",
        "{{ (-3) ** (10 ** 6) }}",
        "{{ 'x' * 10 ** 9 }}",
        "{{ 10 ** 9 * 'x' }}",
        "{{ [0] * (MAX + 1) }}",
        "total: {{ 'ab' * 10 ** 8 }}",
    ],
)
def test_playbook_expression_refuses_huge_results(expression: str) -> None:
    with pytest.raises(TemplateProblem, match=r"refused by the sandbox.*too large"):
        render_string(expression, {"MAX": MAX_REPEAT_LENGTH})


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("{{ 2 ** 10 }}", 1024),
        ("{{ 1 ** (10 ** 9) }}", 1),
        ("{{ (-1) ** (10 ** 9 + 1) }}", -1),
        ("{{ 0 ** (10 ** 9) }}", 0),
        ("{{ 2 ** -2 }}", 0.25),
        ("{{ 1.5 ** 2 }}", 2.25),
        ("{{ 'ab' * 3 }}", "ababab"),
        ("{{ [1] * 3 }}", [1, 1, 1]),
        ("{{ n * 4 }}", 48),
    ],
)
def test_ordinary_arithmetic_is_untouched(expression: str, expected: object) -> None:
    assert render_string(expression, {"n": 12}) == expected


@given(st.integers(min_value=-(10**6), max_value=10**6), st.integers(min_value=0, max_value=5000))
def test_power_is_refused_exactly_when_it_is_large(base: int, exponent: int) -> None:
    large = abs(base) > 1 and abs(base).bit_length() * exponent > MAX_POWER_BITS
    if large:
        with pytest.raises(SecurityError):
            bounded_binop("**", base, exponent)
    else:
        bounded_binop("**", base, exponent)
        assert render_string("{{ b ** e }}", {"b": base, "e": exponent}) == base**exponent


def test_report_template_is_bounded_too() -> None:
    env = make_environment(None, [])
    with pytest.raises(SecurityError, match="too large"):
        env.from_string("{{ 9 ** (9 ** 9) }}").render()
    assert env.from_string("{{ 3 ** 4 }}").render() == "81"


def test_report_template_cannot_change_what_it_is_given() -> None:
    rows = [1, 2]
    with pytest.raises(SecurityError):
        make_environment(None, []).from_string("{{ rows.append(3) }}").render(rows=rows)
    assert rows == [1, 2]


@given(st.lists(st.one_of(st.none(), st.integers(), st.text(max_size=8)), max_size=6))
def test_csvrow_is_one_record_that_parses_back(cells: list[object]) -> None:
    import csv
    import io

    line = csvrow(cells)
    parsed = list(csv.reader(io.StringIO(line, newline="")))
    expected = ["" if c is None else str(c) for c in cells]
    if not cells:
        assert line == ""
        return
    assert parsed == [expected]
    # Outside quoted cells there is no line break: a spreadsheet sees one row.
    assert all(ch not in "\r\n" for ch in _unquoted(line))


def _unquoted(line: str) -> str:
    out, quoted = [], False
    for ch in line:
        if ch == '"':
            quoted = not quoted
        elif not quoted:
            out.append(ch)
    return "".join(out)
