"""Binding a validated playbook to a site and parameter values."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from runner.contract import Registry
from runner.engine.session import Request
from runner.errors import PlaybookError, RecoverError, SiteError, UsageError
from runner.playbook.diagnostics import Diagnostic
from runner.playbook.model import Playbook, params_fingerprint
from runner.playbook.template import TemplateProblem, render_value
from runner.playbook.validate import check_with_params, known_args, named_paths
from runner.playbook.yamlpos import mark_for_path
from runner.site import STATE_DIR, Site


def make_request(
    playbook: Playbook,
    site_dir: Path | None,
    overrides: dict[str, str],
    confirm: tuple[str, ...] = (),
    *,
    registry: Registry,
    typed: dict[str, Any] | None = None,
    selection: tuple[str, ...] | None = None,
) -> Request:
    """`typed` are values already typed (a params file, a saved plan); `overrides`
    are --param texts, converted to each param's type, and win over `typed`."""
    params = playbook.resolve_params(overrides, typed)
    if overrides or typed:
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
    _require_a_site(site, playbook, params, registry)
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
    return Request(
        playbook, site, params, set(playbook.confirm) | set(confirm), allow, registry, selection
    )


def _require_a_site(
    site: Site, playbook: Playbook, params: dict[str, Any], registry: Registry
) -> None:
    """Refuse a directory that is not this playbook's site before anything reads it.

    A site holds the runner's `.recover/` (it has been worked on before), or at
    least one of the catalogs the steps attach or the files the playbook names.
    A large directory with neither (a home or system directory given by
    mistake) is refused: a plan would fingerprint it file by file for hours. A
    small one goes on, and the steps' own checks name what is missing.
    """
    if (site.root / STATE_DIR).is_dir():
        return
    known = known_args(playbook, params)
    named: list[str] = []
    for step, args in known:
        try:
            named += registry.action(step.action)(args).databases(site).values()
        except (RecoverError, LookupError, TypeError, ValueError):
            continue  # arguments known only at run time
    named += named_paths(playbook, known)
    named = list(dict.fromkeys(named))
    for rel in named:
        try:
            if site.path(rel).exists():
                return
        except RecoverError:
            continue  # not a site path at all (a user name, a mode)
    if not _more_entries_than(site.root, NOT_A_SITE_ENTRIES):
        return  # small: a site missing its files; the steps' checks say which
    shown = ", ".join(named[:4]) + (", ..." if len(named) > 4 else "")
    raise SiteError(
        f"{site.root} does not look like a site for {playbook.name}: it has no "
        f"{STATE_DIR}/ and none of the files the playbook names ({shown or 'none'})",
        fix="pass --site with the site directory (the one `recover world` generated, "
        "or the one holding your catalogs and media)",
    )


#: a directory with none of the playbook's files and more entries than this is
#: not taken for a site (a home or system directory given by mistake)
NOT_A_SITE_ENTRIES = 100_000


def _more_entries_than(root: Path, limit: int) -> bool:
    """Whether the tree under `root` holds more than `limit` entries; stops
    counting there, and follows no link, so it is quick on any directory."""
    count = 0
    pending = [root]
    while pending:
        try:
            with os.scandir(pending.pop()) as entries:
                for entry in entries:
                    count += 1
                    if count > limit:
                        return True
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(Path(entry.path))
        except OSError:
            continue
    return False


def run_key(request: Request) -> str:
    """Same playbook text + same params + same site + same step selection = the
    same run (to resume). Without a selection the key is what it always was."""
    parts = [request.playbook.sha256, params_fingerprint(request.params), str(request.site.root)]
    if request.selection is not None:
        parts.append("steps:" + ",".join(request.selection))
    text = "|".join(parts)
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
