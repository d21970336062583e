"""Bounded arithmetic, sizes and time in the Jinja sandboxes (playbook expressions,
report templates)."""

from __future__ import annotations

import re
import signal
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jinja2.sandbox import SecurityError

from runner.engine.reports import csvrow, make_environment
from runner.playbook.template import TemplateProblem, render_string
from runner.sandbox import (
    MAX_EXPRESSION_SECONDS,
    MAX_POWER_BITS,
    MAX_REPEAT_LENGTH,
    bounded_binop,
)


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


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{ 'x' | center(10**9) }}", "center width 1,000,000,000 is too large"),
        ("{{ 'x' | indent(10**9, true) }}", "indent width"),
        ("{{ lipsum(10**6) }}", "lipsum(1,000,000) is too large"),
        ("{{ '%1000000000d' % 1 }}", "asks for a width that is too large"),
        ("{{ '%1000000000s' | format('x') }}", "asks for a width that is too large"),
        ("{{ [1] | batch(10**9, 0) | list }}", "batch size"),
        ("{{ [1] | slice(10**9) | list }}", "slice count"),
        (
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            "longer than 1,000,000 characters",
        ),
        (
            "{% set r = range(100000) %}{% for a in r %}{% for b in r %}{% endfor %}{% endfor %}",
            "took longer than",
        ),
        ("{{ range(100000) | join(',') ~ range(100000) | join(',') }}", "longer than 1,000,000"),
    ],
)
def test_playbook_expressions_are_bounded_in_size_and_time(text: str, message: str) -> None:
    started = time.monotonic()
    with pytest.raises(TemplateProblem, match=re.escape(message)):
        render_string(text, {})
    assert time.monotonic() - started < MAX_EXPRESSION_SECONDS + 1.0


def test_reasonable_expressions_are_untouched() -> None:
    assert render_string("{{ 'x' | center(5) }}", {}) == "  x  "
    assert render_string("{{ '%5d' % 42 }}", {}) == "   42"
    assert render_string("{{ range(3) | join(',') }}", {}) == "0,1,2"
    assert render_string("{{ [1, 2, 3] | batch(2) | list }}", {}) == [[1, 2], [3]]
    assert len(render_string("{{ lipsum(2, false) }}", {})) > 0


def test_an_outer_timer_survives_an_expression() -> None:
    """validate's own callers (tests, a future watchdog) may run a timer too."""
    fired: list[int] = []
    previous = signal.signal(signal.SIGALRM, lambda *_: fired.append(1))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        assert render_string("{{ 1 + 1 }}", {}) == 2
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 0 < remaining <= 0.5
        time.sleep(0.6)
        assert fired == [1]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
