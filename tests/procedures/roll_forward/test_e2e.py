"""The shipped playbook end to end through the CLI, against the world's truth."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.procedures.roll_forward.conftest import (
    DEFAULT_DBS,
    PLAYBOOK,
    assert_matches,
    flags,
    invoke,
    outcome_counts,
    run_playbook,
    scenario,
    snapshot,
)


def test_full_run_matches_expected_content_and_counts(make_site) -> None:
    site = make_site(seed=11)
    result = run_playbook(site)
    assert result.exit_code == 0, result.output
    assert_matches(site)
    expected = scenario(site)["expected"]["per_db"]
    for db in DEFAULT_DBS:
        assert outcome_counts(site, db) == expected[db]
        f = flags(site, db)
        assert f["must_recover"] == "disabled" and f["access"] == "disabled"
        assert f["rolled_forward_to"] == scenario(site)["records"]
    assert sum(expected[db]["dependent"] for db in DEFAULT_DBS) >= 2
    summary = (site / "reports/rollforward/summary.txt").read_text()
    assert "checksum error" in summary and "treated as the end of the log" in summary
    assert f"log records read:   {scenario(site)['records']:,}" in summary
    # the audit database logs to the same set but was not named: untouched
    assert flags(site, "audit")["must_recover"] == "disabled"
    assert flags(site, "audit")["modified"] == 1


def test_plan_predicts_the_run_and_changes_nothing(make_site, tmp_path: Path) -> None:
    site = make_site(seed=12)
    before = snapshot(site)
    out = tmp_path / "plan.json"
    result = invoke("plan", str(PLAYBOOK), "--site", str(site), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert snapshot(site) == before
    plan = json.loads(out.read_text())
    step = next(s for s in plan["steps"] if s["id"] == "recover")
    expected = scenario(site)["expected"]["per_db"]
    outputs = step["outputs"]
    assert outputs["applied"] == sum(expected[db]["applied"] for db in DEFAULT_DBS)
    for reason in ("incomplete", "dependent", "failed", "stop_time"):
        assert outputs["suppressed_by_reason"][reason] == sum(
            expected[db][reason] for db in DEFAULT_DBS
        )
    assert outputs["files_read"] == [f"logs/{n}" for n in scenario(site)["files"]]
    assert outputs["last_time"] == scenario(site)["last_time"]
    notes = " ".join(n["text"] for n in step["notes"])
    assert "will read log set dblog" in notes and "log time" in notes
    assert step["loss"] == {"transactions": outputs["transactions_lost"]}
    # and the run then does what the plan said
    assert run_playbook(site).exit_code == 0
    assert_matches(site)


def test_stop_time_applies_nothing_after_it(make_site) -> None:
    site = make_site(seed=13)
    case = scenario(site)["stop_case"]
    result = run_playbook(site, f"stop_at={case['stop_at']}")
    assert result.exit_code == 0, result.output
    assert_matches(site, "expected-stop")
    for db in DEFAULT_DBS:
        assert outcome_counts(site, db) == case["per_db"][db]
    summary = (site / "reports/rollforward/summary.txt").read_text()
    assert f"requested stop:     {case['stop_at']}" in summary
    assert "ended by:           stop_time" in summary


def test_missing_middle_file_stops_and_continues_when_supplied(make_site) -> None:
    site = make_site(seed=14, drop_log_file=2)
    result = run_playbook(site)
    assert result.exit_code == 1, result.output
    assert "logs/dblog.2.log" in result.output and "supply" in result.output
    abort = (site / "reports/rollforward/abort.txt").read_text()
    for field in (
        "database:",
        "open count total",
        "process user / program:",
        "log file:",
        "logging id",
        "log record number:",
        "transaction type:",
        "transaction date-time:",
        "last successful txn:",
        "its first log record:",
    ):
        assert field in abort
    assert "logs/dblog.2.log" in abort
    partial = flags(site, "sales")["rolled_forward_to"]
    assert partial is not None and partial < scenario(site)["records"]
    shutil.copy(site / "spare" / "dblog.2.log", site / "logs" / "dblog.2.log")
    result = run_playbook(site)
    assert result.exit_code == 0, result.output
    assert_matches(site)
    expected = scenario(site)["expected"]["per_db"]
    for db in DEFAULT_DBS:
        assert outcome_counts(site, db) == expected[db]


def test_tail_variants_end_the_log_with_a_warning(make_site) -> None:
    for tail, words in (
        ("sequence", "sequence-number error"),
        ("torn", "truncated record"),
        ("clean", None),
    ):
        site = make_site(seed=15, tail=tail)
        result = run_playbook(site)
        assert result.exit_code == 0, result.output
        assert_matches(site)
        summary = (site / "reports/rollforward/summary.txt").read_text()
        if words:
            assert words in summary and "treated as the end of the log" in summary
        else:
            assert "warnings:" not in summary


def test_per_user_files_say_where_to_resume(make_site) -> None:
    site = make_site(seed=16)
    assert run_playbook(site).exit_code == 0
    users = site / "reports/rollforward/users"
    ship = (users / "sales.ship01.txt").read_text()
    assert "suppressed:  2 transaction(s)" in ship and "depends on transaction" in ship
    u01 = (users / "sales.u01.txt").read_text()
    assert "RESUME WORK AFTER transaction" in u01
    assert ",suppressed,incomplete," in u01  # the transaction that hung at the crash
    assert run_playbook(site, "user_files=false").exit_code == 0  # already done: no-op


def test_reopen_after_success(make_site) -> None:
    site = make_site(seed=17)
    assert run_playbook(site, "reopen=true").exit_code == 0
    f = flags(site, "stock")
    assert f["access"] == "enabled" and f["recovery"] == "disabled"
