"""Jinja expressions in playbook values, evaluated in a sandbox.

A value that is exactly one `{{ expr }}` keeps the expression's type (so
`"{{ max_jobs }}"` is an integer); any other string with template syntax
renders to a string. The sandbox refuses attribute tricks like
`''.__class__.__mro__` and absurd arithmetic like `9**(9**9)`, and
StrictUndefined turns a typo into an error.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

from jinja2 import (
    StrictUndefined,
    Template,
    TemplateError,
    TemplateSyntaxError,
    UndefinedError,
    meta,
)
from jinja2.environment import TemplateExpression
from jinja2.sandbox import SecurityError

from runner.sandbox import MAX_EXPRESSION_OUTPUT, BoundedImmutableSandbox, expression_budget

_SINGLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>.*?)\}\}\s*$", re.DOTALL)
_ENV = BoundedImmutableSandbox(undefined=StrictUndefined, autoescape=False)
# `{{ name }}`: the commonest expression by far, looked up without Jinja. Jinja
# reads these words as constants, never as names, so they take the long way.
_BARE_NAME = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*")
_CONSTANTS = frozenset({"true", "false", "none", "True", "False", "None"})
# Compiling is most of an expression's cost and a playbook repeats the same
# few texts in many steps: compile each text once per process.
_CACHE_SIZE = 4096


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _compiled_expression(expr: str) -> TemplateExpression:
    return _ENV.compile_expression(expr, undefined_to_none=False)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _template(text: str) -> Template:
    return _ENV.from_string(text)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _names(text: str) -> frozenset[str]:
    return frozenset(meta.find_undeclared_variables(_ENV.parse(text)))


class TemplateProblem(Exception):
    """A playbook expression that does not parse, is unsafe, or fails."""


def has_template(value: object) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _describe(exc: Exception) -> str:
    if isinstance(exc, SecurityError):
        return f"unsafe expression refused by the sandbox: {exc}"
    if isinstance(exc, TemplateSyntaxError):
        # str() adds Jinja's own traceback-like source lines; the message alone
        # is what the playbook's author needs (validation gives the position).
        return f"{type(exc).__name__}: {exc.message}"
    return f"{type(exc).__name__}: {exc}"


def filter_names() -> list[str]:
    """The filters an expression may use (for did-you-mean)."""
    return sorted(_ENV.filters)


def jinja_tests() -> list[str]:
    """The tests (`x is even`) an expression may use (for did-you-mean)."""
    return sorted(_ENV.tests)


def render_string(text: str, context: Mapping[str, Any]) -> Any:
    match = _SINGLE_EXPRESSION.match(text)
    try:
        with expression_budget():
            if match and "{{" not in match.group("expr") and "}}" not in match.group("expr"):
                bare = _BARE_NAME.fullmatch(match.group("expr"))
                if bare and bare.group(1) not in _CONSTANTS and bare.group(1) in context:
                    result = context[bare.group(1)]  # what Jinja's lookup would return
                elif bare and bare.group(1) not in _CONSTANTS and bare.group(1) not in _ENV.globals:
                    raise UndefinedError(f"{bare.group(1)!r} is undefined")
                else:
                    result = _compiled_expression(match.group("expr"))(**context)
                if isinstance(result, StrictUndefined):
                    str(result)  # raises UndefinedError with the name
                if isinstance(result, str | list | dict) and len(result) > MAX_EXPRESSION_OUTPUT:
                    raise SecurityError(_too_long())
                return result
            return _render_bounded(text, context)
    except (
        TemplateError,
        SecurityError,
        ArithmeticError,
        TypeError,
        ValueError,
        MemoryError,
        RecursionError,
    ) as exc:
        raise TemplateProblem(_describe(exc)) from exc


def _too_long() -> str:
    return f"the expression's value is longer than {MAX_EXPRESSION_OUTPUT:,} characters"


def _render_bounded(text: str, context: Mapping[str, Any]) -> str:
    """Render a template string, stopping once its output passes the bound."""
    pieces: list[str] = []
    size = 0
    for piece in _template(text).generate(**context):
        size += len(piece)
        if size > MAX_EXPRESSION_OUTPUT:
            raise SecurityError(_too_long())
        pieces.append(piece)
    return "".join(pieces)


def render_value(value: Any, context: Mapping[str, Any]) -> Any:
    """Render every template string inside a YAML value, recursively."""
    if isinstance(value, str):
        return render_string(value, context) if has_template(value) else value
    if isinstance(value, Mapping):
        return {key: render_value(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [render_value(item, context) for item in value]
    return value


def referenced_names(text: str) -> set[str]:
    """Top-level names a template string uses (for "param used but not declared")."""
    try:
        return set(_names(text))
    except TemplateError as exc:
        raise TemplateProblem(_describe(exc)) from exc
