"""Playbook expressions: typed single expressions, StrictUndefined, the sandbox."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runner.playbook.template import (
    TemplateProblem,
    has_template,
    referenced_names,
    render_string,
    render_value,
)
from tests.helpers import ROOT, pos, process_env

CONTEXT: dict[str, Any] = {
    "n": 5,
    "ratio": 0.5,
    "flag": False,
    "name": "VOL0003",
    "ranges": [{"begin": 1, "end": 9}],
    "opts": {"a": 1},
    "nothing": None,
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{ n }}", 5),
        ("{{n}}", 5),
        ("{{ ratio }}", 0.5),
        ("{{ flag }}", False),
        ("{{ nothing }}", None),
        ("{{ ranges }}", [{"begin": 1, "end": 9}]),
        ("{{ opts }}", {"a": 1}),
        ("{{ n * 2 + 1 }}", 11),
        ("{{ ranges[0].end }}", 9),
        ("{{ [n, name] }}", [5, "VOL0003"]),
        ("{{ name | lower }}", "vol0003"),
    ],
)
def test_a_single_expression_keeps_its_type(text: str, expected: Any) -> None:
    value = render_string(text, CONTEXT)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{ n }} jobs", "5 jobs"),
        ("reports/pre_{{ name }}.txt", "reports/pre_VOL0003.txt"),
        ("{{ n }}{{ n }}", "55"),
        ("{% if flag %}yes{% else %}no{% endif %}", "no"),
    ],
)
def test_any_other_template_renders_to_a_string(text: str, expected: str) -> None:
    assert render_string(text, CONTEXT) == expected


def test_render_value_walks_nested_values_and_leaves_plain_text_alone() -> None:
    value = {"a": ["{{ n }}", "x {{ n }}", 3, None], "b": {"c": "{{ flag }}"}, "d": "plain {"}
    assert render_value(value, CONTEXT) == {
        "a": [5, "x 5", 3, None],
        "b": {"c": False},
        "d": "plain {",
    }


@pytest.mark.parametrize(
    "text",
    ["{{ nope }}", "x {{ nope }}", "{{ nope.attr }}", "{{ opts.missing }}", "{{ n + nope }}"],
)
def test_undefined_names_are_errors_never_empty_strings(text: str) -> None:
    with pytest.raises(TemplateProblem, match=r"undefined|has no attribute"):
        render_string(text, CONTEXT)


@pytest.mark.parametrize(
    "text",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ ().__class__.__base__.__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ lipsum.__globals__['os'] }}",
        "{{ joiner.__init__.__globals__.os }}",
        "{{ namespace.__init__.__globals__ }}",
        "{{ '{0.__class__}'.format(n) }}",
        "{{ ranges.append(1) }}",
        "{{ opts.update(a=2) }}",
        "{{ ranges.pop() }}",
        "prefix {{ ''.__class__ }}",
        "{% for c in ''.__class__.__mro__ %}{{ c }}{% endfor %}",
    ],
)
def test_the_sandbox_refuses_reaching_python_internals(text: str) -> None:
    with pytest.raises(TemplateProblem, match="unsafe expression refused by the sandbox"):
        render_string(text, CONTEXT)
    assert CONTEXT["ranges"] == [{"begin": 1, "end": 9}] and CONTEXT["opts"] == {"a": 1}


def test_the_sandbox_refuses_huge_ranges() -> None:
    with pytest.raises(TemplateProblem, match="Range too big"):
        render_string("{{ range(10**7) | list | length }}", CONTEXT)


@pytest.mark.parametrize(
    "text", ["{{ n + }}", "{{ 1 / 0 }}", "{% for %}", "{{ name + n }}", "{{ n | int(1, 2, 3) }}"]
)
def test_broken_expressions_are_template_problems(text: str) -> None:
    with pytest.raises(TemplateProblem):
        render_string(text, CONTEXT)


def test_referenced_names() -> None:
    assert referenced_names("{{ a }} and {{ b.c }} {% for x in d %}{{ x }}{% endfor %}") == {
        "a",
        "b",
        "d",
    }
    assert referenced_names("{{ steps.repair.outputs.x }}") == {"steps"}
    with pytest.raises(TemplateProblem):
        referenced_names("{{ a + }}")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("{{ x }}", True), ("{% if %}", True), ("plain", False), ("{ x }", False), (5, False)],
)
def test_has_template(value: object, expected: bool) -> None:
    assert has_template(value) is expected


# -- validate refuses the same, at FILE:LINE:COL ------------------------------------


def test_validate_refuses_sandbox_escapes_in_a_playbook(
    toy_env: None, write_playbook: Callable[..., Path]
) -> None:
    from tests.helpers import assert_clean, invoke

    text = (
        "version: 1\nname: evil\nsteps:\n"
        "  - id: a\n    action: toy.copy\n"
        "    args: {src: \"{{ ''.__class__.__mro__ }}\", dst: out.bin}\n"
    )
    path = write_playbook(text)
    result = invoke("validate", path)
    assert result.exit_code == 1
    assert_clean(result)
    line, col = pos(text, "\"{{ ''")
    assert f"{path}:{line}:{col}: " in result.stdout
    assert "unsafe expression refused by the sandbox" in result.stdout
    assert "[$.steps[0].args.src]" in result.stdout


# Jinja's ** is left-associative: {{ 9**9**9 }} is (9**9)**9, a mere 77 digits.
# 9 ** (9 ** 9) has 370 million digits: the sandbox must refuse it, not compute it.
def test_a_huge_power_is_refused_quickly(tmp_path: Path) -> None:
    text = (
        "version: 1\nname: big\nsteps:\n"
        "  - id: a\n    action: toy.mark\n    args: {batch: '{{ 9 ** (9 ** 9) }}'}\n"
    )
    path = tmp_path / "big.yaml"
    path.write_text(text, encoding="utf-8")

    def limit_memory() -> None:  # never let the bug eat the shared machine's memory
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (1 << 31, 1 << 31))

    try:
        done = subprocess.run(
            [sys.executable, "-m", "runner", "validate", str(path)],
            env=process_env(),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=4,
            preexec_fn=limit_memory,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("validate did not refuse {{ 9 ** (9 ** 9) }} within 4 s")
    assert done.returncode == 1, done.stderr
    assert "internal error" not in done.stdout + done.stderr
    assert "[$.steps[0].args.batch]" in done.stdout


@pytest.mark.parametrize("step_id", ["copy", "items", "keys", "get", "values", "update"])
def test_a_key_named_like_a_mapping_method_is_the_key(step_id: str) -> None:
    """`steps.copy` is the step named copy, `outputs.items` the output named items:
    Jinja would otherwise find the dict's method of that name."""
    context = {"steps": {step_id: {"outputs": {"items": 7, "keys": [1]}}}}
    assert render_value(f"{{{{ steps.{step_id}.outputs.items }}}}", context) == 7
    assert render_value(f"{{{{ steps.{step_id}.outputs.keys }}}}", context) == [1]
    assert render_value(f"{{{{ steps.{step_id}.outputs.items + 1 }}}}", context) == 8
    assert render_value("{{ {'a': 1}.items() | list }}", {}) == [("a", 1)]  # methods still work
