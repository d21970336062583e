"""`recover demo`: build every procedure's demo site and run its shipped playbook.

Non-interactive (--yes): the demo is the runner showing what it does on sites
it has just generated, so no one needs to be asked.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from runner.contract import DemoCase, Registry
from runner.engine.request import make_request
from runner.engine.run import RunResult, execute_run
from runner.engine.session import Request, StepOutcome
from runner.errors import RecoverError
from runner.playbook.validate import load_playbook


def prepare(directory: Path, *, force: bool) -> None:
    if directory.exists() and any(directory.iterdir()):
        if not force:
            raise RecoverError(
                f"{directory} exists and is not empty",
                fix="choose another directory or pass --force",
            )
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)


def run_demos(
    directory: Path,
    registry: Registry,
    *,
    on_case: Callable[[DemoCase], None],
    on_step: Callable[[StepOutcome], None],
    on_done: Callable[[DemoCase, Request, RunResult], None],
    on_error: Callable[[RecoverError], None],
) -> int:
    """Run every demo case; returns how many failed."""
    failures = 0
    for procedure in registry.procedures:
        if procedure.demo is None:
            continue
        for case in procedure.demo(directory / procedure.name):
            on_case(case)
            try:
                params = {name: str(value) for name, value in case.params.items()}
                request = make_request(
                    load_playbook(case.playbook, registry),
                    case.site,
                    params,
                    case.confirm,
                    registry=registry,
                )
                result = execute_run(request, yes=True, confirm=None, on_step=on_step)
            except RecoverError as exc:
                failures += 1
                on_error(exc)
                continue
            on_done(case, request, result)
    return failures
