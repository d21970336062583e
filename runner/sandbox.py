"""Jinja sandboxes with bounded arithmetic, for playbooks and report templates.

Jinja's sandbox stops attribute tricks (`''.__class__.__mro__`) but not an
expression that simply computes forever or fills memory: `{{ 9**9**9 }}`
would hang `recover plan` for hours, `{{ 'x' * 10**10 }}` would take 10 GB.
Both environments here intercept `**`, `*` and `%` and refuse results beyond
a size no recovery playbook or report needs; the filters and globals that take
a size (`center`, `indent`, `format`, `batch`, `slice`, `lipsum`) are bounded the
same way. Playbook expressions are also bounded in output and time
(`expression_budget`), which report templates are not: a report streams as
many rows as the catalog holds, for as long as that takes.
"""

from __future__ import annotations

import contextlib
import re
import signal
import threading
from collections.abc import Iterator
from typing import Any

from jinja2 import filters as jinja_filters
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from jinja2.utils import generate_lorem_ipsum

#: largest integer an expression may build with `**`, in bits (~30,000 digits)
MAX_POWER_BITS = 100_000
#: largest string or list an expression may build with `*` (or a width, a count)
MAX_REPEAT_LENGTH = 10_000_000
#: most paragraphs `lipsum()` may make
MAX_LIPSUM_PARAGRAPHS = 1_000
#: most characters one playbook expression may render to
MAX_EXPRESSION_OUTPUT = 1_000_000
#: most seconds one playbook expression may take
MAX_EXPRESSION_SECONDS = 2.0
#: a `%` format with a width or precision of seven digits or more
_HUGE_FORMAT = re.compile(r"%[-+ #0]*(\d{7,}|\*)|%[-+ #0]*\d*\.(\d{7,}|\*)")


def bounded_binop(operator: str, left: Any, right: Any) -> None:
    """Raise SecurityError if `left operator right` would be absurdly large."""
    if (
        operator == "**"
        and _is_int(left)
        and _is_int(right)
        and abs(left) > 1
        and abs(left).bit_length() * right > MAX_POWER_BITS
    ):
        raise SecurityError(f"{left} ** {right} is too large (over {MAX_POWER_BITS:,} bits)")
    if operator == "*":
        for seq, count in ((left, right), (right, left)):
            if (
                isinstance(seq, (str, bytes, list, tuple))
                and _is_int(count)
                and len(seq) * count > MAX_REPEAT_LENGTH
            ):
                raise SecurityError(
                    f"repeating a {type(seq).__name__} {count:,} times is too large "
                    f"(over {MAX_REPEAT_LENGTH:,} items)"
                )
    if operator == "%" and isinstance(left, str) and _HUGE_FORMAT.search(left):
        raise SecurityError(f"the format {left[:40]!r} asks for a width that is too large")


def _bounded_size(what: str, value: Any) -> None:
    if _is_int(value) and value > MAX_REPEAT_LENGTH:
        raise SecurityError(f"{what} {value:,} is too large (over {MAX_REPEAT_LENGTH:,})")


def _center(value: Any, width: int = 80) -> str:
    _bounded_size("center width", width)
    return str(jinja_filters.do_center(value, width))


def _indent(value: Any, width: Any = 4, *args: Any, **kwargs: Any) -> Any:
    _bounded_size("indent width", width)
    return jinja_filters.do_indent(value, width, *args, **kwargs)


def _format(value: Any, *args: Any, **kwargs: Any) -> str:
    if isinstance(value, str) and _HUGE_FORMAT.search(value):
        raise SecurityError(f"the format {value[:40]!r} asks for a width that is too large")
    return str(jinja_filters.do_format(value, *args, **kwargs))


def _batch(value: Any, linecount: int, fill_with: Any = None) -> Any:
    _bounded_size("batch size", linecount)
    return jinja_filters.do_batch(value, linecount, fill_with)


def _slice(value: Any, slices: int, fill_with: Any = None) -> Any:
    _bounded_size("slice count", slices)
    return jinja_filters.do_slice(value, slices, fill_with)


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    if _is_int(n) and n > MAX_LIPSUM_PARAGRAPHS:
        raise SecurityError(f"lipsum({n:,}) is too large (over {MAX_LIPSUM_PARAGRAPHS:,})")
    _bounded_size("lipsum words", max)
    return str(generate_lorem_ipsum(n, html, min, max))


@contextlib.contextmanager
def expression_budget(seconds: float = MAX_EXPRESSION_SECONDS) -> Iterator[None]:
    """Stop an expression that runs longer than `seconds` with a SecurityError.

    A timer signal interrupts any Python loop, Jinja's included. Only the main
    thread can take signals; elsewhere (no such caller today) it is not bounded.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise SecurityError(f"the expression took longer than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    remaining, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if remaining:  # an outer timer was running: give it back what it had left
            signal.setitimer(signal.ITIMER_REAL, remaining)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _Bounded:
    intercepted_binops = frozenset({"**", "*", "%"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        env: Any = self
        env.filters.update(
            center=_center, indent=_indent, format=_format, batch=_batch, slice=_slice
        )
        env.globals["lipsum"] = _lipsum

    def getattr(self, obj: Any, attribute: str) -> Any:
        """`a.b` on a mapping with a key `b` is that key, before the mapping's
        methods: `steps.copy` is the step named copy, `outputs.items` the
        output named items (Jinja would find dict.copy and dict.items)."""
        if isinstance(obj, dict) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)  # type: ignore[misc]

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        bounded_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)  # type: ignore[misc]


class BoundedImmutableSandbox(_Bounded, ImmutableSandboxedEnvironment):
    """Playbook expressions and report templates: neither may change the params,
    rows or settings they are given."""
