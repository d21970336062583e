"""Saved plans (`recover plan -o`): what they record, and checking one before a run.

A saved plan is authoritative: it records the playbook (path and content
hash), the site, every parameter value, the step selection and the extra
confirmations, so `recover run --plan FILE` needs nothing else. Before a run
it is checked first: options given beside it must agree with it (else exit
3, naming each difference), and the site must still be the one it was made
on (else exit 3, explaining item by item what changed since).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.contract import Registry
from runner.engine import journal
from runner.engine.fingerprint import describe_differences, fingerprint
from runner.engine.heldfiles import SQLITE_MAGIC, read_file
from runner.engine.session import Request
from runner.errors import RecoverError, StalePlan
from runner.playbook.validate import known_args

#: the plan file's format; 1 (before plans recorded the selection and the
#: evidence a stale plan is explained with) is refused with the fix
PLAN_FORMAT = 2
FRESH_PLAN_FIX = "make a fresh plan with `recover plan ... -o PLAN.json` and review it"


@dataclass(frozen=True)
class SavedPlan:
    """A plan file as read back: its JSON, and what a run takes from it."""

    path: Path
    data: dict[str, Any]

    @property
    def playbook(self) -> Path:
        return Path(str(self.data["playbook"]))

    @property
    def site(self) -> Path:
        return Path(str(self.data["site"]))

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.data["params"])

    @property
    def selection(self) -> tuple[str, ...] | None:
        chosen = self.data.get("selection")
        return None if chosen is None else tuple(chosen)

    @property
    def confirmations(self) -> tuple[str, ...]:
        return tuple(self.data.get("confirmations") or ())

    @property
    def text(self) -> str:
        """The plan as `recover plan` printed it."""
        return str(self.data.get("text") or "")

    def as_printed_json(self) -> dict[str, Any]:
        """The plan as `recover plan --json` printed it."""
        return {k: v for k, v in self.data.items() if k != "text"}


def read_plan(path: Path) -> SavedPlan:
    """Read a plan file; anything but a plan this release saved is refused (exit 3)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StalePlan(
            f"plan file {path} does not exist",
            fix="make one with `recover plan PLAYBOOK -o PLAN.json`",
        ) from None
    except (OSError, ValueError) as exc:
        raise StalePlan(
            f"plan file {path} is unreadable: {exc}",
            fix="make one with `recover plan PLAYBOOK -o PLAN.json`",
        ) from exc
    if not isinstance(data, dict) or not isinstance(data.get("format"), int):
        raise StalePlan(
            f"{path} is not a plan made by `recover plan -o`",
            fix="make one with `recover plan PLAYBOOK -o PLAN.json`",
        )
    if data["format"] != PLAN_FORMAT:
        raise StalePlan(
            f"{path} was saved in plan format {data['format']}; this release reads "
            f"format {PLAN_FORMAT}",
            fix=FRESH_PLAN_FIX,
        )
    damaged = [key for key, fits in _SHAPES.items() if not fits(data.get(key))]
    if damaged:
        raise StalePlan(
            f"{path} is damaged: {', '.join(damaged)} missing or not as `recover plan` writes it",
            fix=FRESH_PLAN_FIX,
        )
    return SavedPlan(path, data)


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _mapping_of(fits: Any) -> Any:
    return lambda value: (
        isinstance(value, dict)
        and all(isinstance(key, str) and fits(item) for key, item in value.items())
    )


#: what each field a run reads must look like (anything else: a damaged plan file)
_SHAPES: dict[str, Any] = {
    "playbook": lambda value: isinstance(value, str) and bool(value),
    "site": lambda value: isinstance(value, str) and bool(value),
    "params": lambda value: isinstance(value, dict),
    "param_defaults": lambda value: isinstance(value, dict),
    "selection": lambda value: value is None or (_strings(value) and bool(value)),
    "confirmations": _strings,
    "fingerprint": _mapping_of(lambda item: isinstance(item, str)),
    "catalog_rows": _mapping_of(
        _mapping_of(lambda item: isinstance(item, int) and not isinstance(item, bool))
    ),
    "journal_steps": _mapping_of(_strings),
}


def require_agreement(saved: SavedPlan, given: dict[str, tuple[Any, Any]]) -> None:
    """Refuse options given beside a plan that differ from it, naming each.

    `given` maps what (e.g. "site", "param batch") to (the plan's, the given)."""
    differences = [
        f"{what}: plan {_shown(planned)} -> given {_shown(value)}"
        for what, (planned, value) in given.items()
        if planned != value
    ]
    if differences:
        raise StalePlan(
            f"the options given differ from the plan {saved.path}:\n  " + "\n  ".join(differences),
            fix=f"run the plan as it was made: `recover run --plan {saved.path}` (nothing "
            "else needed), or make a new plan with these options",
        )


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value)) or "none"
    return json.dumps(value, default=str) if not isinstance(value, str) else repr(value)


def fingerprint_digest(prints: dict[str, str]) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(prints, sort_keys=True).encode()).hexdigest()


def check_plan(saved: SavedPlan, request: Request, *, recorded_digest: str | None) -> None:
    """Refuse a plan that no longer describes this playbook, these params and this site.

    `recorded_digest` is the plan a resumed run was started from: that run
    changed the site itself, so only the plan's identity is compared then."""
    data = saved.data
    why: list[str] = []
    if data.get("playbook_sha256") != request.playbook.sha256:
        why.append(f"the playbook file {request.playbook.path} changed since the plan was made")
        why += _changed_defaults(data.get("param_defaults") or {}, request)
    planned_params = data.get("params") or {}
    current = _as_json(request.params)
    for name in sorted(set(planned_params) | set(current)):
        if planned_params.get(name) != current.get(name):
            why.append(
                f"param {name}: {_shown(planned_params.get(name))} -> {_shown(current.get(name))}"
            )
    if data.get("site") != str(request.site.root):
        why.append(f"the plan is for site {data.get('site')}, not {request.site.root}")
    old = data.get("fingerprint") or {}
    if recorded_digest is not None:
        if fingerprint_digest(old) != recorded_digest:
            why.append("this interrupted run was started from a different plan")
    else:
        why += _site_changes(data, request, old)
    if why:
        raise StalePlan(
            "the plan no longer matches the site:\n  " + "\n  ".join(why), fix=FRESH_PLAN_FIX
        )


def _changed_defaults(then: dict[str, Any], request: Request) -> list[str]:
    """The playbook's param defaults that changed since the plan (the plan keeps its values)."""
    params = request.playbook.params
    now = {name: _as_json(p.default) for name, p in params.items() if p.has_default}
    out = []
    for name in sorted(set(then) | set(now) | set(params)):
        before, after = then.get(name, _NONE), now.get(name, _NONE)
        if before != after:
            out.append(
                f"param {name}: default {_default(before)} -> {_default(after)} in the playbook"
            )
    return out


_NONE = object()


def _default(value: Any) -> str:
    return "none" if value is _NONE else _shown(value)


def _as_json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _site_changes(data: dict[str, Any], request: Request, old: dict[str, str]) -> list[str]:
    """What changed on the site since the plan: files (with, for catalogs, the
    tables whose row counts changed), then the steps that ran since."""
    now = fingerprint(request.site.root)
    counts_then: dict[str, dict[str, int]] = data.get("catalog_rows") or {}
    lines = []
    for line in describe_differences(old, now, limit=20):
        kind, _, rel = line.partition(": ")
        if kind == "changed" and rel in counts_then:
            tables = _changed_tables(counts_then[rel], _row_counts(request.site.root / rel))
            if tables:
                line += " (row counts: " + "; ".join(tables) + ")"
            else:
                line += " (same row counts; rows changed in place)"
        lines.append(line)
    ran = _steps_ran_since(request.site.state_dir / "journal.sqlite", data.get("journal_steps"))
    return lines + ran


def _changed_tables(then: dict[str, int], now: dict[str, int] | None) -> list[str]:
    if now is None:
        return ["unreadable now"]
    out = []
    for table in sorted(set(then) | set(now)):
        before, after = then.get(table), now.get(table)
        if before != after:
            out.append(f"{table} {_count(before)} -> {_count(after)}")
    return out


def _count(value: int | None) -> str:
    return "absent" if value is None else f"{value:,}"


def _steps_ran_since(journal_path: Path, then: Any) -> list[str]:
    before = {(run, step) for run, steps in (then or {}).items() for step in steps}
    now = journal_steps(journal_path)
    ran = [(run, step) for run, steps in now.items() for step in steps if (run, step) not in before]
    if not ran:
        return []
    by_run: dict[str, list[str]] = {}
    for run, step in ran:
        by_run.setdefault(run, []).append(step)
    return [f"steps ran since: {', '.join(steps)} (run {run})" for run, steps in by_run.items()]


# -- the evidence a plan records ------------------------------------------------------


def evidence(request: Request) -> dict[str, Any]:
    """What a stale plan is later explained with: the row counts of each table
    of the catalogs the steps attach, and the steps each run had finished.
    Read without changing a byte (read-only connections)."""
    rows: dict[str, dict[str, int]] = {}
    for rel in catalogs_of(request):
        counts = _row_counts(request.site.root / rel)
        if counts is not None:
            rows[rel] = counts
    return {
        "catalog_rows": rows,
        "journal_steps": journal_steps(request.site.state_dir / "journal.sqlite"),
    }


def catalogs_of(request: Request) -> list[str]:
    """The site-relative catalogs the playbook's steps attach (as far as the
    params tell; arguments only known at run time are left out)."""
    registry: Registry = request.registry
    found: list[str] = []
    for step, args in known_args(request.playbook, request.params):
        try:
            found += registry.action(step.action)(args).databases(request.site).values()
        except (RecoverError, LookupError, TypeError, ValueError):
            continue
    return list(dict.fromkeys(found))


def _row_counts(path: Path) -> dict[str, int] | None:
    """Every table's row count; None if that cannot be read without changing a byte.

    Opening a WAL database, even read-only, creates its -wal and -shm files,
    and a hot journal is recovered by the first reader: such a catalog (until
    a run switches it to rollback mode) has no counts. Any other is opened
    immutable, which takes no lock and creates nothing."""
    if not path.is_file():
        return None  # a FIFO or device would block or never end; preflight says so
    try:
        with read_file(path) as handle:
            head = handle.read(20)
    except OSError:
        return None
    if head[:16] != SQLITE_MAGIC or head[18:20] != b"\x01\x01":
        return None  # not SQLite, or WAL mode
    for suffix in ("-journal", "-wal"):
        if path.with_name(path.name + suffix).exists():
            return None
    try:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro&immutable=1", uri=True)
    except sqlite3.Error:
        return None
    try:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        quoted = {table: '"' + table.replace('"', '""') + '"' for table in tables}
        return {
            table: conn.execute(f"SELECT count(*) FROM {quoted[table]}").fetchone()[0]
            for table in tables
        }
    except sqlite3.Error:
        return None
    finally:
        conn.close()


def journal_steps(path: Path) -> dict[str, list[str]]:
    """run id -> the ids of its finished steps, read-only ({} without a journal)."""
    if not path.exists():
        return {}
    try:
        conn = journal.connect_readonly(path)
    except sqlite3.Error:
        return {}
    try:
        rows = conn.execute(
            "SELECT run_id, step_id FROM main.recover_steps WHERE state IN ('done', 'skipped') "
            "ORDER BY run_id, position"
        ).fetchall()
    except sqlite3.Error:
        return {}
    finally:
        conn.close()
    out: dict[str, list[str]] = {}
    for run_id, step_id in rows:
        out.setdefault(run_id, []).append(step_id)
    return out


def repeat_warning(request: Request, key: str) -> str | None:
    """When this is a new run but another run of the same playbook finished on
    this site (other params, other steps, an earlier version of the playbook):
    a line saying so, since the new run does its steps again. Read-only."""
    path = request.site.state_dir / "journal.sqlite"
    if not path.exists():
        return None
    try:
        conn = journal.connect_readonly(path)
    except sqlite3.Error:
        return None
    try:
        row = conn.execute(
            "SELECT run_id, run_key, playbook_sha, params_json FROM main.recover_runs "
            "WHERE playbook_name = ? AND state = 'done' ORDER BY started_at DESC, rowid DESC "
            "LIMIT 1",
            (request.playbook.name,),
        ).fetchone()
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    if row is None or row[1] == key:
        return None
    run_id, _, sha, params_json = row
    then, now = json.loads(params_json), _as_json(request.params)
    changed = [
        f"{name}: {_shown(then.get(name))} -> {_shown(now.get(name))}"
        for name in sorted(set(then) | set(now))
        if then.get(name) != now.get(name)
    ]
    if sha != request.playbook.sha256:
        how = "an earlier version of the playbook"
    elif changed:
        how = "other params (" + ", ".join(changed) + ")"
    else:
        how = "other steps selected"
    return (
        f"Note: run {run_id} of {request.playbook.name} finished on this site with {how}; "
        "this is a new run, and it does its steps again."
    )
