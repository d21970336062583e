"""Safety gates and bad input: right exit code, a clear message, no partial changes."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

from tests.procedures.roll_forward.conftest import (
    DEFAULT_DBS,
    PLAYBOOK,
    PREPARE,
    assert_matches,
    flags,
    invoke,
    prepare,
    recover_step,
    run_playbook,
    snapshot,
    user_tables,
    write_playbook,
)


def _recover_only(site: Path, tmp: Path, name: str = "rec", **args: object):  # type: ignore[no-untyped-def]
    book = write_playbook(tmp / f"{name}.yaml", recover_step(**args), name)
    return run_playbook(site, playbook=book)


def test_stamp_mismatch_is_refused_then_overridden_loudly(make_site, tmp_path: Path) -> None:
    site = make_site(seed=21, mismatch_stamp="stock")
    prepare(site, tmp_path)
    before = snapshot(site, "databases")
    result = _recover_only(site, tmp_path)
    assert result.exit_code == 3, result.output
    assert "do not correspond" in result.output and "stock" in result.output
    assert snapshot(site, "databases") == before
    result = _recover_only(site, tmp_path, "rec2", no_stamp_check=True)
    assert result.exit_code == 0, result.output
    assert "OVERRIDE no_stamp_check" in result.output
    assert (
        "OVERRIDE IN USE:    no_stamp_check"
        in (site / "reports/rollforward/summary.txt").read_text()
    )
    assert_matches(site)  # this mismatched backup holds the same data


def test_backup_not_made_by_store_utility(make_site, tmp_path: Path) -> None:
    site = make_site(seed=22, foreign_backup="sales")
    result = run_playbook(site)
    assert result.exit_code == 3, result.output
    assert "not made by the store utility" in result.output
    result = run_playbook(site, "no_store_flag_check=true")
    assert result.exit_code == 0, result.output
    assert "OVERRIDE no_store_flag_check" in result.output
    assert_matches(site)


def test_whole_log_set_of_another_cycle_is_a_stamp_mismatch(make_site, tmp_path: Path) -> None:
    site, other = make_site(seed=23), make_site(seed=24)
    shutil.rmtree(site / "logs")
    shutil.copytree(other / "logs", site / "logs")
    prepare(site, tmp_path)
    before = snapshot(site, "databases")
    result = _recover_only(site, tmp_path)
    assert result.exit_code == 3, result.output
    assert snapshot(site, "databases") == before


def test_database_open_for_access_is_refused(make_site, tmp_path: Path) -> None:
    site = make_site(seed=25)
    book = write_playbook(
        tmp_path / "r.yaml",
        """
  - id: restore
    action: rollforward.restore
    args: {databases: [sales]}
""",
    )
    before = snapshot(site)
    result = run_playbook(site, playbook=book)
    assert result.exit_code == 3, result.output
    assert "open for access" in result.output
    assert snapshot(site) == before
    prepare(site, tmp_path)
    conn = sqlite3.connect(site / "databases/stock.sqlite")
    conn.execute("UPDATE rf_flags SET access = 'enabled'")
    conn.commit()
    conn.close()
    before = snapshot(site, "databases")
    result = _recover_only(site, tmp_path)
    assert result.exit_code == 3 and "open for access" in result.output
    assert snapshot(site, "databases") == before


def test_not_enabled_for_recovery_counts_against_error_limit(make_site, tmp_path: Path) -> None:
    site = make_site(seed=26)
    prepare(site, tmp_path)
    close_audit = write_playbook(
        tmp_path / "audit.yaml",
        """
  - id: close
    action: rollforward.set_flags
    args: {databases: [audit], access: disabled}
  - id: restore
    action: rollforward.restore
    args: {databases: [audit]}
""",
        "audit",
    )
    assert run_playbook(site, playbook=close_audit).exit_code == 0
    before = snapshot(site, "databases")
    result = _recover_only(site, tmp_path, databases=["sales", "audit"])
    assert result.exit_code == 1, result.output
    assert "audit is not enabled for recovery" in result.output
    assert snapshot(site, "databases") == before
    abort = (site / "reports/rollforward/abort.txt").read_text()
    assert (
        "database:                  audit" in abort and "last successful txn:       none" in abort
    )
    result = _recover_only(site, tmp_path, "rec2", databases=["sales", "audit"], error_limit=1)
    assert result.exit_code == 0, result.output
    assert "error 1 (limit 1): database audit is not enabled for recovery" in result.output
    assert_matches(site, databases=("sales",))
    assert flags(site, "audit")["rolled_forward_to"] is None


def test_already_rolled_forward_is_not_replayed_again(make_site, tmp_path: Path) -> None:
    site = make_site(seed=27)
    assert run_playbook(site).exit_code == 0
    result = _recover_only(site, tmp_path)
    assert result.exit_code == 3 and "already rolled forward" in result.output
    assert_matches(site)


def test_access_cannot_be_enabled_before_recovery(make_site, tmp_path: Path) -> None:
    site = make_site(seed=28)
    prepare(site, tmp_path)
    book = write_playbook(
        tmp_path / "open.yaml",
        """
  - id: open
    action: rollforward.set_flags
    args: {databases: [sales], access: enabled}
""",
    )
    result = run_playbook(site, playbook=book)
    assert result.exit_code == 3 and "must be recovered" in result.output
    assert flags(site, "sales")["access"] == "disabled"


def test_unknown_database_and_missing_backup(make_site, tmp_path: Path) -> None:
    site = make_site(seed=29)
    before = snapshot(site)
    result = run_playbook(site, "databases=[sales, nosuch]")
    assert result.exit_code == 1
    assert "unknown database 'nosuch'" in result.output and "known: audit, sales" in result.output
    assert snapshot(site) == before
    (site / "backups/stock.sqlite").unlink()
    before = user_tables(site / "databases/stock.sqlite")
    result = run_playbook(site, playbook=write_playbook(tmp_path / "p.yaml", PREPARE))
    assert result.exit_code == 1 and "no backup copy backups/stock.sqlite" in result.output
    assert user_tables(site / "databases/stock.sqlite") == before
    assert not (site / "damaged").exists()


def _damage_and_expect(site: Path, tmp: Path, damage, words: str) -> None:  # type: ignore[no-untyped-def]
    prepare(site, tmp)
    damage(site / "logs")
    before = snapshot(site, "databases")
    result = _recover_only(site, tmp)
    assert result.exit_code == 1, result.output
    assert words in result.output, result.output
    assert snapshot(site, "databases") == before


def test_garbage_log_file(make_site, tmp_path: Path) -> None:
    _damage_and_expect(
        make_site(seed=30),
        tmp_path,
        lambda logs: (logs / "dblog.3.log").write_bytes(b"\x00garbage" * 500),
        "is not a roll-forward log file",
    )


def test_truncated_record_in_a_middle_file(make_site, tmp_path: Path) -> None:
    def cut(logs: Path) -> None:
        data = (logs / "dblog.2.log").read_bytes()
        (logs / "dblog.2.log").write_bytes(data[:-60])

    _damage_and_expect(make_site(seed=31), tmp_path, cut, "is damaged")


def test_wrong_checksum_in_a_middle_file(make_site, tmp_path: Path) -> None:
    def flip(logs: Path) -> None:
        data = bytearray((logs / "dblog.2.log").read_bytes())
        data[len(data) // 2] ^= 0x01
        (logs / "dblog.2.log").write_bytes(bytes(data))

    _damage_and_expect(make_site(seed=32), tmp_path, flip, "do not match the checksum")


def test_file_from_another_cycle(make_site, tmp_path: Path) -> None:
    other = make_site(seed=33)
    _damage_and_expect(
        make_site(seed=34),
        tmp_path,
        lambda logs: shutil.copy(other / "logs/dblog.2.log", logs / "dblog.2.log"),
        "belongs to another logging cycle",
    )


def test_damaged_cycle_start_record(make_site, tmp_path: Path) -> None:
    def flip(logs: Path) -> None:
        data = bytearray((logs / "dblog.1.log").read_bytes())
        data[60] ^= 0xFF
        (logs / "dblog.1.log").write_bytes(bytes(data))

    _damage_and_expect(make_site(seed=35), tmp_path, flip, "dblog.1.log")


def test_missing_log_set_and_bad_stop_time(make_site, tmp_path: Path) -> None:
    site = make_site(seed=36)
    prepare(site, tmp_path)
    result = _recover_only(site, tmp_path, log_set="other")
    assert result.exit_code == 1 and "no file of log set 'other'" in result.output
    result = _recover_only(site, tmp_path, "rec2", stop_at="2026-01-05 08:00")
    assert result.exit_code == 1 and "time zone" in result.output


def test_static_check_restore_after_recover(tmp_path: Path) -> None:
    book = write_playbook(
        tmp_path / "bad.yaml",
        recover_step()
        + """
  - id: restore
    action: rollforward.restore
    args: {databases: [sales]}
""",
    )
    result = invoke("validate", str(book))
    assert result.exit_code == 1 and "restores from backup after a roll forward" in result.output


def test_damaged_databases_are_kept(make_site) -> None:
    site = make_site(seed=37)
    damaged = {db: user_tables(site / "databases" / f"{db}.sqlite") for db in DEFAULT_DBS}
    assert run_playbook(site).exit_code == 0
    for db in DEFAULT_DBS:
        kept = site / "damaged" / f"{db}.20260106T090000.sqlite"
        assert user_tables(kept) == damaged[db]
        assert damaged[db] != user_tables(site / "databases" / f"{db}.sqlite")


def test_plan_reports_a_refusal_without_changing_anything(make_site, tmp_path: Path) -> None:
    site = make_site(seed=38, mismatch_stamp="sales")
    before = snapshot(site)
    out = tmp_path / "plan.json"
    result = invoke("plan", str(PLAYBOOK), "--site", str(site), "-o", str(out))
    assert result.exit_code == 3, result.output
    assert snapshot(site) == before
    step = next(s for s in json.loads(out.read_text())["steps"] if s["id"] == "recover")
    assert step["status"] == "refused" and "do not correspond" in step["error"]


def test_plan_names_the_missing_file(make_site, tmp_path: Path) -> None:
    site = make_site(seed=39, drop_log_file=3)
    before = snapshot(site)
    result = invoke("plan", str(PLAYBOOK), "--site", str(site))
    assert result.exit_code == 1
    assert "supply logs/dblog.3.log" in result.output
    assert snapshot(site) == before


def test_a_database_changed_since_its_backup_is_not_rolled_forward(
    make_site, tmp_path: Path
) -> None:
    site = make_site(seed=40)
    book = write_playbook(
        tmp_path / "norestore.yaml",
        """
  - id: close
    action: rollforward.set_flags
    args: {databases: [sales, stock, staff], access: disabled, recovery: enabled}
"""
        + recover_step(),
    )
    before = {db: user_tables(site / "databases" / f"{db}.sqlite") for db in DEFAULT_DBS}
    result = run_playbook(site, playbook=book)
    assert result.exit_code == 3, result.output
    assert "modified after its backup copy was taken" in result.output
    assert "restore it from its backup copy first" in result.output
    assert before == {db: user_tables(site / "databases" / f"{db}.sqlite") for db in DEFAULT_DBS}


def test_clearing_must_recover_by_hand_needs_a_confirmation(make_site, tmp_path: Path) -> None:
    site = make_site(seed=42)
    prepare(site, tmp_path)
    book = write_playbook(
        tmp_path / "clear.yaml",
        """
  - id: clear
    action: rollforward.set_flags
    args: {databases: [stock], must_recover: disabled}
""",
    )
    result = run_playbook(site, playbook=book)
    assert result.exit_code == 3 and "rollforward-clear-must-recover" in result.output
    assert flags(site, "stock")["must_recover"] == "enabled"
    result = invoke(
        "run",
        str(book),
        "--site",
        str(site),
        "--yes",
        "--confirm",
        "rollforward-clear-must-recover",
        "--new-run",
    )
    assert result.exit_code == 0, result.output
    assert flags(site, "stock")["must_recover"] == "disabled"


def test_hostile_database_names_are_rejected(make_site) -> None:
    site = make_site(seed=43)
    before = snapshot(site)
    for bad in ("[../../etc]", "[sales, 'a b']", "sales"):
        result = run_playbook(site, f"databases={bad}")
        assert result.exit_code in (1, 2), result.output
    assert snapshot(site) == before
