"""Jinja sandboxes with bounded arithmetic, for playbooks and report templates.

Jinja's sandbox stops attribute tricks (`''.__class__.__mro__`) but not an
expression that simply computes forever or fills memory: `{{ 9**9**9 }}`
would hang `recover plan` for hours, `{{ 'x' * 10**10 }}` would take 10 GB.
Both environments here intercept `**` and `*` and refuse results beyond a
size no recovery playbook or report needs.
"""

from __future__ import annotations

from typing import Any

from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

#: largest integer an expression may build with `**`, in bits (~30,000 digits)
MAX_POWER_BITS = 100_000
#: largest string or list an expression may build with `*`
MAX_REPEAT_LENGTH = 10_000_000


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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _Bounded:
    intercepted_binops = frozenset({"**", "*"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        bounded_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)  # type: ignore[misc]


class BoundedImmutableSandbox(_Bounded, ImmutableSandboxedEnvironment):
    """Playbook expressions and report templates: neither may change the params,
    rows or settings they are given."""
