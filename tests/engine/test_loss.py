"""LossTally: the run's loss against the playbook's budget, counted once."""

from __future__ import annotations

from runner.engine.journal import StepRecord
from runner.engine.loss import LossTally


def _record(step: str, **loss: int) -> StepRecord:
    return StepRecord(step, 0, "toy.mark", loss=dict(loss))


def test_totals_add_up_every_step_in_the_order_units_were_first_lost() -> None:
    tally = LossTally.of(
        [_record("a", objects=3), _record("b"), _record("c", items=2, objects=4)], {}
    )
    assert tally.totals == {"objects": 7, "items": 2}
    assert list(tally.totals) == ["objects", "items"]


def test_exceeded_names_units_past_their_budget_in_the_totals_order() -> None:
    records = [_record("a", zeta=6, items=5, other=1)]
    tally = LossTally.of(records, {"zeta": 5, "items": 5})
    # items is at its budget (not past it); other is not named, so it allows none
    assert tally.exceeded() == ["zeta", "other"]
    assert tally.allowed_for("other") == 0


def test_an_unlimited_unit_is_never_exceeded() -> None:
    tally = LossTally.of([_record("a", items=10**9)], {"items": None})
    assert tally.exceeded() == []
    assert tally.allowed_for("items") is None


def test_no_loss_is_never_exceeded_and_described_as_none() -> None:
    tally = LossTally.of([_record("a")], {"items": 0})
    assert tally.totals == {} and tally.exceeded() == []
    assert tally.describe() == ["Data loss: none."]


def test_the_description_sorts_units_and_names_each_budget() -> None:
    tally = LossTally.of(
        [_record("a", objects=12_345, items=5, studies=1)], {"items": None, "objects": 20000}
    )
    assert tally.describe() == [
        "Data loss: 5 items (allowed: unlimited); 12,345 objects (allowed: 20000); "
        "1 studies (allowed: 0)."
    ]


def test_the_budget_as_a_plan_file_shows_it() -> None:
    tally = LossTally({}, {"items": None, "objects": 3})
    assert tally.allowed_json() == {"items": "unlimited", "objects": 3}
