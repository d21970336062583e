"""Choosing steps: --start-at, --only, --skip, and where unselected steps' outputs come from.

A selection is part of a run's identity (its run key), so an interrupted
selected run resumes with exactly the same steps. A selected step may use
`steps.X` of a step that is not selected only when the journal holds X done
(or skipped) by a run of the same playbook with the same params; those
records are the selected run's inputs.
"""

from __future__ import annotations

import difflib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runner.engine import journal
from runner.engine.journal import StepRecord
from runner.errors import PreconditionFailed, UsageError
from runner.playbook.model import Playbook, Step
from runner.playbook.validate import _STEP_REF


def select_steps(
    playbook: Playbook, start_at: str | None, only: str | None, skip: str | None
) -> tuple[str, ...] | None:
    """The selected step ids in playbook order, or None when every step runs.

    The three options combine: from --start-at on, within --only, minus --skip."""
    if start_at is None and only is None and skip is None:
        return None
    ids = [step.id for step in playbook.steps]
    chosen = list(ids)
    if start_at is not None:
        first = _known(playbook, start_at.strip(), "--start-at")
        chosen = ids[ids.index(first) :]
    if only is not None:
        wanted = {_known(playbook, name, "--only") for name in _names(only, "--only")}
        chosen = [step_id for step_id in chosen if step_id in wanted]
    if skip is not None:
        unwanted = {_known(playbook, name, "--skip") for name in _names(skip, "--skip")}
        chosen = [step_id for step_id in chosen if step_id not in unwanted]
    if not chosen:
        raise UsageError(
            "this selection leaves no step to run",
            fix="list the steps with --list-steps and choose at least one",
        )
    if chosen == ids:
        return None  # every step: the same run as no selection at all
    return tuple(chosen)


def _names(text: str, option: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise UsageError(f"{option} needs step ids, e.g. {option} STEP[,STEP]")
    return names


def _known(playbook: Playbook, name: str, option: str) -> str:
    ids = [step.id for step in playbook.steps]
    if name in ids:
        return name
    close = difflib.get_close_matches(name, ids, n=1)
    hint = f"did you mean {close[0]!r}?" if close else "the steps are: " + ", ".join(ids)
    raise UsageError(
        f"{option} {name}: the playbook has no step {name!r}; {hint}",
        fix="list the steps with `recover plan PLAYBOOK --list-steps`",
    )


def step_inputs(step: Step) -> list[str]:
    """The steps whose results this step reads (`steps.X` in its args or its `when`)."""
    refs = (ref for text in _strings((step.args, step.when)) for ref in _STEP_REF.findall(text))
    return list(dict.fromkeys(refs))


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


def describe_selection(selection: tuple[str, ...] | None) -> str:
    return "all" if selection is None else ", ".join(selection)


def borrowed_inputs(
    journal_path: Path,
    playbook: Playbook,
    params: dict[str, Any],
    selection: tuple[str, ...] | None,
    own: dict[str, StepRecord],
) -> dict[str, StepRecord]:
    """The finished records of unselected steps that selected steps read.

    `own` is the selected run's own records (a resumed run). Refuses (exit 1)
    when a selected step reads a step that is neither selected nor finished in
    the journal, naming it and how to include it. Reads the journal without
    changing a byte."""
    if selection is None:
        return {}
    chosen = set(selection)
    needed: dict[str, str] = {}  # input step -> the first selected step reading it
    for step in playbook.steps:
        if step.id in chosen:
            for ref in step_inputs(step):
                if ref not in chosen:
                    needed.setdefault(ref, step.id)
    needed = {ref: by for ref, by in needed.items() if not _finished(own.get(ref))}
    if not needed:
        return {}
    found = {
        step_id: record
        for step_id, (_, record) in latest_finished(
            journal_path, playbook, params, set(needed)
        ).items()
    }
    missing = [ref for ref in needed if ref not in found]
    if missing:
        ref = missing[0]
        wanted = [s.id for s in playbook.steps if s.id in chosen or s.id in missing]
        raise PreconditionFailed(
            f"step {needed[ref]!r} uses the results of step {ref!r}, which is neither "
            "selected nor done on this site by a run of this playbook with these params",
            fix=f"select it too (--only {','.join(wanted)}, or --start-at an earlier step), "
            f"or run step {ref!r} first (--only {ref})",
        )
    return found


def _finished(record: StepRecord | None) -> bool:
    return record is not None and record.state.finished


def latest_finished(
    journal_path: Path, playbook: Playbook, params: dict[str, Any], wanted: set[str]
) -> dict[str, tuple[str, StepRecord]]:
    """Each wanted step's newest finished record among this playbook's runs
    with these params (whatever their selection)."""
    if not journal_path.exists():
        return {}
    found: dict[str, tuple[str, StepRecord]] = {}
    try:
        conn = journal.connect_readonly(journal_path)
    except sqlite3.Error:
        return {}
    try:
        runs = conn.execute(
            "SELECT run_id FROM main.recover_runs WHERE playbook_sha = ? AND params_json = ? "
            "ORDER BY started_at DESC, rowid DESC",
            (playbook.sha256, journal.dump(params)),
        ).fetchall()
        for (run_id,) in runs:
            for step_id, record in journal.read_steps(conn, run_id).items():
                if step_id in wanted and step_id not in found and record.state.finished:
                    found[step_id] = (run_id, record)
            if len(found) == len(wanted):
                break
    except sqlite3.Error:
        return found
    finally:
        conn.close()
    return found
