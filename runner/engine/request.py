"""Binding a validated playbook to a site and parameter values."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from runner.contract import Registry
from runner.engine.session import Request
from runner.errors import PlaybookError, UsageError
from runner.playbook.diagnostics import Diagnostic
from runner.playbook.model import Playbook, params_fingerprint
from runner.playbook.template import TemplateProblem, render_value
from runner.playbook.validate import check_with_params
from runner.playbook.yamlpos import mark_for_path
from runner.site import Site


def make_request(
    playbook: Playbook,
    site_dir: Path | None,
    overrides: dict[str, str],
    confirm: tuple[str, ...] = (),
    *,
    registry: Registry,
) -> Request:
    params = playbook.resolve_params(overrides)
    if overrides:
        problems = check_with_params(playbook, params, registry)
        if problems:
            raise PlaybookError(
                problems, f"{len(problems)} problem(s) with these params, before any step ran"
            )
    root = site_dir if site_dir is not None else playbook.site_root()
    if root is None:
        raise UsageError("no site given", fix="pass --site DIR or set site.root in the playbook")
    locations = {
        k: str(_render(playbook, ("site", k), v, params)) for k, v in playbook.locations().items()
    }
    site = Site(Path(root).resolve(), locations)
    site.require_exists()
    allow: dict[str, int | None] = {}
    for unit, value in playbook.allow_loss.items():
        value = _render(playbook, ("safety", "allow_loss", unit), value, params)
        if value == "unlimited":
            allow[unit] = None
        elif isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            allow[unit] = value
        else:
            raise _problem(
                playbook,
                ("safety", "allow_loss", unit),
                f"allow_loss.{unit} must be a whole number >= 0 or 'unlimited', got {value!r}",
                fix=f"write e.g. `allow_loss: {{{unit}: 100}}` or `{{{unit}: unlimited}}`",
            )
    return Request(playbook, site, params, set(playbook.confirm) | set(confirm), allow, registry)


def run_key(request: Request) -> str:
    """Same playbook text + same params + same site = the same run (to resume)."""
    text = "|".join(
        (request.playbook.sha256, params_fingerprint(request.params), str(request.site.root))
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _render(playbook: Playbook, path: tuple[str, ...], value: Any, params: dict[str, Any]) -> Any:
    try:
        return render_value(value, params)
    except TemplateProblem as exc:
        raise _problem(
            playbook, path, f"expression fails: {exc}", "fix the {{ ... }} expression"
        ) from exc


def _problem(
    playbook: Playbook, path: tuple[str, ...], message: str, fix: str | None = None
) -> PlaybookError:
    mark = mark_for_path(playbook.raw, path)
    return PlaybookError(
        [Diagnostic(str(playbook.path), mark.line, mark.col, message, path, fix)], message
    )
