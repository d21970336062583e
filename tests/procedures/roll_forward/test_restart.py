"""The restart's crash record ending the log, and status after a resumed run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from runner.procedures.roll_forward.media import CRASH, CRASH_P, CRASH_SIZE, RECORD
from tests.procedures.roll_forward.conftest import (
    assert_matches,
    invoke,
    run_playbook,
    scenario,
)

NO_CRASH = "does not end with a crash record"


def _trailer(site: Path) -> tuple[int, int] | None:
    """(type, last intact seq) of the newest file's last CRASH_SIZE bytes."""
    newest = site / "logs" / scenario(site)["files"][-1]
    tail = newest.read_bytes()[-CRASH_SIZE:]
    _crc, _length, _seq, rtype = RECORD.unpack_from(tail)
    return rtype, CRASH_P.unpack_from(tail, RECORD.size)[1]


def test_a_log_ended_by_the_restart_rolls_forward_without_a_warning(tmp_path: Path) -> None:
    site = tmp_path / "site"
    result = invoke("world", "rollforward", str(site), "--seed", "41", "--transactions", "150")
    assert result.exit_code == 0, result.output
    assert scenario(site)["crash_record"] is True
    assert _trailer(site) == (CRASH, scenario(site)["records"])
    result = run_playbook(site)
    assert result.exit_code == 0, result.output
    assert_matches(site)
    summary = (site / "reports/rollforward/summary.txt").read_text()
    assert NO_CRASH not in summary and NO_CRASH not in result.output
    # the crash left a checksum-broken tail in front of the crash record: still the end
    assert "a checksum error" in summary and "treated as the end of the log" in summary


def test_a_log_without_a_crash_record_rolls_forward_with_a_warning(tmp_path: Path) -> None:
    for tail in ("clean", "torn"):
        site = tmp_path / tail
        result = invoke(
            "world", "rollforward", str(site), "--seed", "42", "--transactions", "150",
            "--rows", "20", "--tail", tail, "--no-crash-record",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert scenario(site)["crash_record"] is False
        assert _trailer(site)[0] != CRASH  # type: ignore[index]
        result = run_playbook(site)
        assert result.exit_code == 0, result.output
        assert_matches(site)  # rolled forward all the same
        summary = (site / "reports/rollforward/summary.txt").read_text()
        assert "warnings:" in summary and NO_CRASH in summary
        assert NO_CRASH in result.output
        status = json.loads(invoke("status", "--site", str(site), "--json").output)
        assert NO_CRASH in json.dumps(status)


def test_the_crash_record_keeps_a_torn_tail_torn(make_site) -> None:
    """The records end where the crash record starts: the torn record in front of it
    reads as truncated, as it would without one."""
    site = make_site(seed=43, tail="torn")
    assert run_playbook(site).exit_code == 0
    summary = (site / "reports/rollforward/summary.txt").read_text()
    assert "a truncated record" in summary and NO_CRASH not in summary
    assert_matches(site)


def test_status_after_a_resumed_run_shows_no_old_error(make_site) -> None:
    site = make_site(seed=44, drop_log_file=2)
    first = run_playbook(site)
    assert first.exit_code == 1
    status = json.loads(invoke("status", "--site", str(site), "--json").output)
    failed = {s["step_id"]: s for s in status["runs"][0]["steps"]}["recover"]
    assert failed["state"] == "failed" and "roll forward stopped" in failed["error"]
    shutil.copy(site / "spare" / "dblog.2.log", site / "logs" / "dblog.2.log")
    result = run_playbook(site)
    assert result.exit_code == 0, result.output
    assert_matches(site)
    status = json.loads(invoke("status", "--site", str(site), "--json").output)
    steps = {s["step_id"]: s for s in status["runs"][0]["steps"]}
    assert steps["recover"]["state"] == "done" and steps["recover"]["attempts"] == 2
    assert steps["recover"]["error"] is None
    assert all(s["error"] is None for s in steps.values())
    assert status["runs"][0]["state"] == "done" and status["runs"][0]["error"] is None


def test_stamps_in_the_mismatch_message_keep_their_microseconds(make_site) -> None:
    site = make_site(seed=45, mismatch_stamp="staff")
    result = run_playbook(site)
    assert result.exit_code == 3
    assert "backup stamp 2026-01-04T08:38:00.000000+00:00 does not match" in result.output
    assert "(2026-01-05T08:38:00.000000+00:00)" in result.output
