"""A plan's preflight (runner.engine.preflight) reads the site while the steps are
rehearsed, and what the steps show waits for its verdict: when it finds a
problem, the rehearsal that assumed none is dropped and the plan is the one a
preflight run first gives (the steps it blocks shown failed, each step shown once)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from runner.contract import Check, Registry
from runner.engine import plan as plan_module
from runner.engine import rehearsal as rehearsal_module
from runner.engine.journal import StepState
from runner.engine.plan import make_plan
from runner.engine.preflight import StepProblems
from runner.engine.request import make_request
from runner.engine.session import Request, StepOutcome
from runner.playbook.validate import load_playbook
from tests import toyproc
from tests.helpers import invoke, snapshot
from tests.toyproc import Mark

FAKE = Check("the toy catalog holds values of the right types", False, "row 3", "correct row 3")


def _request(playbook: Path, registry: Registry) -> Request:
    return make_request(load_playbook(playbook, registry), None, {}, registry=registry)


class _Steps:
    """Counts the steps the rehearsal begins; lets a test wait for the n-th."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.begun = 0
        self.changed = threading.Condition()
        real = rehearsal_module.Rehearsal.begin_step

        def begin_step(rehearsal: Any) -> None:
            with self.changed:
                self.begun += 1
                self.changed.notify_all()
            real(rehearsal)

        monkeypatch.setattr(rehearsal_module.Rehearsal, "begin_step", begin_step)

    def wait_for(self, count: int) -> bool:
        """Whether `count` steps have begun within 10 s (never, if the preflight
        had to end before the rehearsal began)."""
        with self.changed:
            return self.changed.wait_for(lambda: self.begun >= count, timeout=10)


def _slow_preflight(
    monkeypatch: pytest.MonkeyPatch, steps: _Steps, events: list[Any], *, problem: bool
) -> None:
    """The real preflight, ending only once two steps were rehearsed (the first
    one's outcome is then waiting), plus FAKE on step `mark` if `problem`."""
    real = plan_module.preflight

    def preflight(request: Request, *args: Any) -> list[StepProblems]:
        events.append(("alongside", steps.wait_for(2)))
        found = real(request, *args)
        if problem:
            mark = next(s for s in request.playbook.steps if s.id == "mark")
            found.append(StepProblems(mark, [FAKE]))
        events.append("preflight done")
        return found

    monkeypatch.setattr(plan_module, "preflight", preflight)


def test_the_preflight_reads_while_the_steps_are_rehearsed_and_they_wait_for_it(
    toy_playbook: Path, toy_site: Path, toy_registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = make_plan(_request(toy_playbook, toy_registry)).to_json()
    steps = _Steps(monkeypatch)
    events: list[Any] = []
    _slow_preflight(monkeypatch, steps, events, problem=False)
    before = snapshot(toy_site)
    shown: list[StepOutcome] = []

    def on_step(outcome: StepOutcome) -> None:
        shown.append(outcome)
        events.append(("shown", outcome.record.step_id))

    result = make_plan(_request(toy_playbook, toy_registry), on_step=on_step)
    assert events == [
        ("alongside", True),  # the rehearsal had begun two steps while it read
        "preflight done",  # ...and showed nothing before its verdict
        ("shown", "offline"),
        ("shown", "mark"),
        ("shown", "copy"),
    ]
    assert shown == result.outcomes
    data = result.to_json()
    assert {k: v for k, v in data.items() if k != "created"} == {
        k: v for k, v in expected.items() if k != "created"
    }
    assert snapshot(toy_site) == before


def test_a_problem_the_preflight_finds_late_drops_the_rehearsal_and_blocks_its_step(
    toy_playbook: Path, toy_site: Path, toy_registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = _Steps(monkeypatch)
    events: list[Any] = []
    _slow_preflight(monkeypatch, steps, events, problem=True)
    before = snapshot(toy_site)
    shown: list[StepOutcome] = []
    result = make_plan(_request(toy_playbook, toy_registry), on_step=shown.append)
    assert events == [("alongside", True), "preflight done"]
    # each step shown once, from the plan made knowing the problem
    assert shown == result.outcomes
    states = {o.record.step_id: o.record.state for o in result.outcomes}
    assert states == {"offline": StepState.DONE, "mark": StepState.FAILED, "copy": StepState.DONE}
    mark = result.outcomes[1]
    assert mark.checks == [FAKE]
    assert mark.record.changes == {}  # not rehearsed on inputs known to be bad
    assert mark.record.error is not None and "would fail before any step ran" in mark.record.error
    assert mark.fix == "correct row 3"
    # the dropped rehearsal's two steps (three, if it began the next one before the
    # preflight's verdict came), then offline and copy: mark is not begun again
    assert steps.begun in (2 + 2, 3 + 2)
    assert snapshot(toy_site) == before


def test_a_step_that_breaks_on_inputs_the_preflight_refuses_gives_the_refusal(
    toy_playbook: Path, toy_site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rehearsed before the preflight's verdict, a step may meet the bad input it
    would refuse, and fail as a bug would (no RecoverError): the plan still
    says what the preflight found, with its fix, and no traceback."""

    def broken(self: Mark, ctx: Any) -> None:
        raise TypeError("unsupported operand type(s) for +: 'int' and 'str'")

    monkeypatch.setattr(Mark, "run", broken)
    real = plan_module.preflight

    def preflight(request: Request, *args: Any) -> list[StepProblems]:
        mark = next(s for s in request.playbook.steps if s.id == "mark")
        return [*real(request, *args), StepProblems(mark, [FAKE])]

    monkeypatch.setattr(plan_module, "preflight", preflight)
    before = snapshot(toy_site)
    result = invoke("plan", toy_playbook)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output
    assert "FAIL the toy catalog holds values of the right types (row 3)" in result.output
    assert "correct row 3" in result.output
    assert snapshot(toy_site) == before
    # the same break with no problem found is a bug, reported as one
    monkeypatch.setattr(plan_module, "preflight", real)
    crashed = invoke("plan", toy_playbook)
    assert crashed.exit_code == 1
    assert "internal error: TypeError" in crashed.output, crashed.output
    assert snapshot(toy_site) == before


WAITING_PLAYBOOK = """\
version: 1
name: toy-wait
description: one long step
site:
  root: site
  catalog: catalog.sqlite
steps:
  - id: wait
    action: toy.wait
    args: {items: 400, seconds: 20}
"""


def test_a_step_rehearsed_when_the_preflight_finds_a_problem_stops_at_its_next_progress(
    tmp_path: Path, toy_site: Path, toy_registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long step is not rehearsed to its end for nothing (a plan that lacks a
    confirmation, say): it stops as soon as the preflight has found a problem."""
    playbook = tmp_path / "wait.yaml"
    playbook.write_text(WAITING_PLAYBOOK)
    steps = _Steps(monkeypatch)
    real = plan_module.preflight

    def preflight(request: Request, *args: Any) -> list[StepProblems]:
        assert steps.wait_for(1)
        return [*real(request, *args), StepProblems(request.playbook.steps[0], [FAKE])]

    monkeypatch.setattr(plan_module, "preflight", preflight)
    waited = 0
    real_sleep = toyproc.time.sleep

    def sleep(seconds: float) -> None:
        nonlocal waited
        waited += 1
        real_sleep(seconds)

    monkeypatch.setattr(toyproc.time, "sleep", sleep)
    result = make_plan(_request(playbook, toy_registry))
    assert waited < 100  # of 400 items (20 s): stopped within a few tenths of a second
    [outcome] = result.outcomes
    assert outcome.record.state == StepState.FAILED
    assert outcome.checks == [FAKE]
    assert steps.begun == 1  # the blocked step is not rehearsed again
