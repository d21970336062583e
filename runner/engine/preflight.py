"""Checks before the first step: a run that would fail on its inputs changes nothing.

A step's own checks (`Action.check`) run just before it, on the site as the
earlier steps left it. A failure found there, at the third step, comes after
the first two have committed. So before any step runs, `run` (and `plan`,
which reports the same) checks every pending step's inputs that no earlier
step provides: its arguments as the params make them, its catalogs (readable
SQLite files, whole, not a directory or a FIFO), its site paths, and what the
action's own `preflight(ctx)` checks (tables and columns, media present and
of the right kind, backups and logs). Nothing is written: catalogs are opened
read-only and media through a dry-run store.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from runner.contract import Action, Check
from runner.engine.claims import ReportClaims
from runner.engine.context import Context
from runner.engine.heldfiles import SQLITE_MAGIC, read_file
from runner.engine.journal import StepRecord
from runner.engine.media import MediaStore
from runner.engine.reports import make_environment
from runner.engine.session import Request
from runner.errors import PreconditionFailed, RecoverError, SafetyRefusal
from runner.playbook.model import Step
from runner.playbook.template import TemplateProblem, has_template, render_value
from runner.playbook.validate import STEP_REF, known_args
from runner.site import Site

_NAME_MAX = 255  # bytes in one file name (Linux, macOS)
_PATH_MAX = 4096


@dataclass
class StepProblems:
    """A pending step whose inputs already fail: the checks that do."""

    step: Step
    failed: list[Check]


def preflight(
    request: Request, records: dict[str, StepRecord], now: datetime
) -> list[StepProblems]:
    """Every pending step's failing preflight checks (an empty list: go ahead)."""
    site: Site = request.site
    registry = request.registry
    media = MediaStore(site, dry_run=True)
    reports = make_environment(site.root / "templates", registry.template_folders())
    out: list[StepProblems] = []
    try:
        for step, args in known_args(request.playbook, request.params):
            if not request.selected(step):
                continue
            record = records.get(step.id)
            if record is not None and record.state.finished:
                continue
            if _statically_skipped(step, request.params):
                continue
            action = registry.action(step.action)(args)
            schema = registry.action_schema(step.action)
            checks = [*_path_checks(args, schema, site)]
            if not checks:
                state = record.state_data if record is not None else {}
                checks += _step_checks(
                    action, site, media, reports, step, now, state, request.confirmations
                )
            failed = [c for c in checks if not c.ok]
            if failed:
                out.append(StepProblems(step, failed))
    finally:
        media.close()
    return out


def refuse_if_any(problems: list[StepProblems]) -> None:
    """Raise the refusal `run` gives: which steps would fail, why, and the fix.

    A problem several steps share (a catalog without a table) is said once,
    naming the first step it stops and how many later ones it would stop too."""
    if not problems:
        return
    steps: dict[tuple[str, str], list[str]] = {}
    fixes: dict[tuple[str, str], str | None] = {}
    for problem in problems:
        for check in problem.failed:
            key = (check.name, check.detail)
            steps.setdefault(key, []).append(problem.step.id)
            fixes.setdefault(key, check.fix)
    lines = []
    for (name, detail), ids in steps.items():
        later = f" (and {len(ids) - 1} later step(s): {', '.join(ids[1:])})" if len(ids) > 1 else ""
        lines.append(
            f"step {ids[0]!r}{later} would fail: {name}" + (f": {detail}" if detail else "")
        )
    first = problems[0]
    refused = all(c.refusal for p in problems for c in p.failed)
    raise (SafetyRefusal if refused else PreconditionFailed)(
        "\n  ".join(lines) + "\n  nothing was changed: this was found before the first step ran",
        fix=next((fix for fix in fixes.values() if fix), None)
        or f"correct the site or the params for step {first.step.id!r}, then run again",
    )


def _path_checks(args: dict[str, Any], schema: dict[str, Any], site: Site) -> Iterator[Check]:
    """Each site-path argument (`format: site-path` in the action's schema) stays
    inside the site: no link on the way out, not into `.recover/`, and every
    directory on the way is a directory (a file there makes every write fail)."""
    properties = schema.get("properties", {}) if isinstance(schema, dict) else {}
    for key, value in args.items():
        spec = properties.get(key)
        if not isinstance(spec, dict) or spec.get("format") != "site-path":
            continue
        if not isinstance(value, str) or not value:
            continue
        try:
            path = site.path(value, what=key)
        except RecoverError as exc:
            yield Check(f"{key} stays inside the site", False, exc.message, exc.fix)
            continue
        long_name = next((p for p in value.split("/") if len(os.fsencode(p)) > _NAME_MAX), None)
        if long_name is not None or len(os.fsencode(str(path))) > _PATH_MAX:
            yield Check(
                f"{key} is not too long",
                False,
                f"{value[:60]}...: "
                + (
                    f"a name of {len(os.fsencode(long_name)):,} bytes"
                    if long_name is not None
                    else f"a path of {len(os.fsencode(str(path))):,} bytes"
                )
                + " (the file system takes at most "
                + f"{_NAME_MAX} bytes a name, {_PATH_MAX:,} a path)",
                f"give a shorter {key}",
            )
            continue
        blocked = _blocking_file(site.root, path)
        if blocked is not None:
            yield Check(
                f"{key} can be written",
                False,
                f"{value}: {blocked} is not a directory",
                f"choose another {key}, or move {blocked} aside",
            )


def _blocking_file(root: Path, path: Path) -> str | None:
    """The first directory on the way from the site root to `path` that exists
    and is not a directory (site-relative), or None."""
    current = root
    for part in path.relative_to(root).parts[:-1]:
        current = current / part
        try:
            mode = current.lstat().st_mode
        except OSError:
            return None
        if not stat.S_ISDIR(mode) and not stat.S_ISLNK(mode):
            return current.relative_to(root).as_posix()
    return None


def _statically_skipped(step: Step, params: dict[str, Any]) -> bool:
    """A `when` the params alone make false: the step will not run."""
    if step.when is None or (isinstance(step.when, str) and STEP_REF.search(step.when)):
        return False
    try:
        value = render_value(step.when, params) if has_template(step.when) else step.when
    except TemplateProblem:
        return False  # validation reports the expression
    return not value


def _step_checks(
    action: Action,
    site: Site,
    media: MediaStore,
    reports: Any,
    step: Step,
    now: datetime,
    state: dict[str, Any],
    confirmations: set[str],
) -> Iterator[Check]:
    try:
        databases = action.databases(site)
    except RecoverError as exc:
        yield Check("catalogs named", False, exc.message, exc.fix)
        return
    conn = sqlite3.connect("file::memory:", uri=True)
    try:
        attached = True
        for alias, rel in databases.items():
            check, ok = _attach(conn, alias, rel, site)
            attached &= ok
            if check is not None:
                yield check
        if not attached:
            return  # a catalog failed, or is left to the step's own checks
        # An interrupted step's checkpoint: its preflight sees where it stopped.
        record = StepRecord(step.id, step.index, step.action, state_data=dict(state))
        ctx = Context(
            site=site,
            db=conn,
            media=media,
            dry_run=True,
            now=now,
            run_id="preflight",
            record=record,
            confirmations=confirmations,
            reports=reports,
            on_checkpoint=_no_checkpoint,
            claims=ReportClaims(None),
        )
        yield from _guarded(action.preflight(ctx), step)
    finally:
        conn.close()


def _guarded(checks: Iterable[Check], step: Step) -> Iterator[Check]:
    """An action's preflight checks; a read that fails is itself a failed check."""
    try:
        yield from checks
    except RecoverError as exc:
        yield Check(f"inputs of step {step.id}", False, exc.message, exc.fix)
    except sqlite3.Error as exc:
        yield Check(
            "catalog readable",
            False,
            f"reading the catalog failed: {exc}",
            "check that the catalog is intact (sqlite3 FILE 'PRAGMA integrity_check') "
            "and matches this procedure",
        )


def _no_checkpoint(ctx: Context) -> None:
    raise AssertionError("a preflight check never checkpoints")


def _attach(
    conn: sqlite3.Connection, alias: str, rel: str, site: Site
) -> tuple[Check | None, bool]:
    """Attach a catalog read-only: (a failed check or None, whether it is attached).

    A catalog with a rollback journal or a WAL beside it is not attached: reading
    it read-only could not recover it, and would leave files behind; the step's
    own attach, which does recover it, checks it then."""
    fix = f"restore {rel} from a backup, or point the playbook's site at the right file"
    try:
        path = site.path(rel)
    except RecoverError as exc:
        return Check(f"catalog {rel}", False, exc.message, exc.fix), False
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return (
            Check(
                f"catalog {rel}",
                False,
                f"database {rel} does not exist in site {site.root}",
                "check --site and the playbook's site section",
            ),
            False,
        )
    except OSError as exc:
        return Check(f"catalog {rel}", False, f"{rel} cannot be read: {exc.strerror}", fix), False
    if not stat.S_ISREG(mode):
        return (
            Check(
                f"catalog {rel}",
                False,
                f"{rel} is a {_kind(mode)}, not a SQLite file",
                f"replace {rel} with the catalog file, or point the playbook's site at it",
            ),
            False,
        )
    if any(path.with_name(path.name + suffix).exists() for suffix in ("-journal", "-wal")):
        return None, False
    truncated = _truncated(path, rel)
    if truncated is not None:
        return Check(f"catalog {rel}", False, truncated, fix), False
    try:
        # immutable: no lock, no -shm or -wal file, not a byte written
        conn.execute(
            f"ATTACH DATABASE ? AS {alias}", (f"file:{quote(str(path))}?mode=ro&immutable=1",)
        )
        conn.execute(f"SELECT count(*) FROM {alias}.sqlite_master").fetchone()
    except sqlite3.OperationalError:
        return None, False  # the step's own attach says what is wrong
    except sqlite3.DatabaseError as exc:
        return (
            Check(f"catalog {rel}", False, f"{rel} is not a readable SQLite database ({exc})", fix),
            False,
        )
    return None, True


def _truncated(path: Path, rel: str) -> str | None:
    """Why a SQLite file is shorter than its header says, or None.

    The header records the page size and, when its "valid for" counter matches
    the change counter, the page count: a file cut short (a copy that stopped
    half way) is found here, before a step reads a page that is not there. A
    file with a rollback journal or a WAL beside it may legitimately differ."""
    try:
        with read_file(path) as handle:  # keeps the plan's SQLite locks on it
            header = handle.read(100)
        size = path.stat().st_size
    except OSError:
        return None
    if len(header) < 100 or not header.startswith(SQLITE_MAGIC):
        return None  # empty, or not SQLite at all: attaching it says which
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    if header[24:28] != header[92:96] or not pages:
        return None
    expected = pages * page_size
    if size >= expected:
        return None
    return (
        f"{rel} is truncated: its header says {pages:,} pages of {page_size:,} bytes "
        f"({expected:,} bytes), the file has {size:,}"
    )


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "special file"
