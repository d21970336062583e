"""Issue 13 item 4: each refusal's printed fix, followed literally, lets the re-run succeed.

Every refusal roll-forward can give on a generated site is triggered through the CLI,
the `fix:` line is followed as an operator would, and the same command is run again.
Not covered: the log-set scan's refusals (bad file headers, a foreign logging id) need
hand-corrupted log files, and a database without (or with an empty) rf_flags table a
hand-made one; "leave the log files alone during a roll forward" needs another process
changing the log mid-run; "the log reader stopped before the end of the log" is an
internal fault; a database name with other characters is refused by the argument schema
before the action's own check; the backup check "supply an intact backup copy" is
preceded by the runner's refusal to attach an unreadable file (covered instead).
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from tests.helpers import fix_line, playbook_copy
from tests.procedures.roll_forward.conftest import PLAYBOOK, invoke, run_playbook

Maker = Callable[..., Path]


def _without(*ids: str) -> Any:
    def edit(doc: dict[str, Any]) -> None:
        doc["steps"] = [s for s in doc["steps"] if s["id"] not in ids]

    return edit


def _recovered(result: Result) -> None:
    assert result.exit_code == 0, result.output
    assert "finished" in result.output
    assert "error:" not in result.output


def _set_flag(path: Path, column: str, value: str) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute(f"UPDATE rf_flags SET {column} = ?", (value,))
    conn.close()


def test_confirmation_refusal_fix_is_yes(make_site: Maker) -> None:
    site = make_site()
    first = run_playbook(site, yes=False)
    assert first.exit_code == 3
    assert "--yes" in fix_line(first.output)
    _recovered(run_playbook(site))


def test_missing_log_file_fix_supply_it(make_site: Maker) -> None:
    site = make_site(files=3, drop_log_file=2)
    first = run_playbook(site)
    assert first.exit_code == 1
    assert "supply logs/dblog.2.log and run again" in fix_line(first.output)
    shutil.move(site / "spare" / "dblog.2.log", site / "logs" / "dblog.2.log")
    _recovered(run_playbook(site))


def test_stamp_mismatch_fix_no_stamp_check(make_site: Maker) -> None:
    site = make_site(mismatch_stamp="sales")
    first = run_playbook(site)
    assert first.exit_code == 3
    assert "set no_stamp_check" in fix_line(first.output)
    result = run_playbook(site, "no_stamp_check=true")
    _recovered(result)
    assert "OVERRIDE no_stamp_check" in result.output


def test_foreign_backup_fix_no_store_flag_check(make_site: Maker) -> None:
    site = make_site(foreign_backup="stock")
    first = run_playbook(site)
    assert first.exit_code == 3
    assert "no_store_flag_check" in fix_line(first.output)
    result = run_playbook(site, "no_store_flag_check=true")
    _recovered(result)
    assert "OVERRIDE no_store_flag_check" in result.output


def test_not_enabled_fix_enable_recovery(make_site: Maker) -> None:
    site = make_site()
    _set_flag(site / "databases" / "staff.sqlite", "recovery", "disabled")
    first = run_playbook(site, "enable_recovery=false")
    assert first.exit_code == 1
    assert "enable recovery (rollforward.set_flags recovery: enabled)" in fix_line(first.output)
    _recovered(run_playbook(site, "enable_recovery=true"))


def test_not_enabled_fix_raise_error_limit(make_site: Maker) -> None:
    site = make_site()
    _set_flag(site / "databases" / "staff.sqlite", "recovery", "disabled")
    first = run_playbook(site, "enable_recovery=false")
    assert first.exit_code == 1
    assert "raise error_limit" in fix_line(first.output)
    result = run_playbook(site, "enable_recovery=false", "error_limit=1")
    _recovered(result)
    assert "staff is not enabled for recovery; it is not recovered" in result.output


def test_bad_stop_at_fix_gives_the_form(make_site: Maker) -> None:
    site = make_site()
    first = run_playbook(site, "stop_at=yesterday")
    assert first.exit_code == 1
    assert "write it like 2026-01-02T03:04:05+00:00" in fix_line(first.output)
    _recovered(run_playbook(site, "stop_at=2026-01-05T09:00:00+00:00"))


def test_stop_before_the_cycle_fix_names_the_earliest(make_site: Maker) -> None:
    site = make_site()
    first = run_playbook(site, "stop_at=2000-01-01T00:00:00+00:00")
    assert first.exit_code == 1
    fix = fix_line(first.output)
    assert "give a stop time at or after " in fix, fix
    earliest = fix.split("at or after ")[1].split()[0]
    _recovered(run_playbook(site, f"stop_at={earliest}"))


def test_already_rolled_forward_fix_restore(make_site: Maker, tmp_path: Path) -> None:
    site = make_site()
    _recovered(run_playbook(site))
    again = playbook_copy(PLAYBOOK, tmp_path, _without("restore"))
    first = invoke("run", str(again), "--site", str(site), "--yes", "--new-run")
    assert first.exit_code == 3, first.output
    assert "rollforward.restore" in fix_line(first.output)
    _recovered(invoke("run", str(PLAYBOOK), "--site", str(site), "--yes", "--new-run"))


@pytest.mark.parametrize("where", ["backups", "databases"])  # refused by recover, by restore
def test_open_database_fix_disable_access(make_site: Maker, tmp_path: Path, where: str) -> None:
    site = make_site()
    _set_flag(site / where / "sales.sqlite", "access", "enabled")
    unclosed = playbook_copy(PLAYBOOK, tmp_path, _without("close"))
    first = invoke("run", str(unclosed), "--site", str(site), "--yes")
    assert first.exit_code == 3, first.output
    assert "rollforward.set_flags access: disabled" in fix_line(first.output)
    _recovered(run_playbook(site))


def test_set_flags_without_a_flag_fix(make_site: Maker, tmp_path: Path) -> None:
    site = make_site()

    def no_flag(doc: dict[str, Any]) -> None:
        step = next(s for s in doc["steps"] if s["id"] == "close")
        del step["args"]["access"]

    bare = playbook_copy(PLAYBOOK, tmp_path, no_flag)
    first = invoke("run", str(bare), "--site", str(site), "--yes")
    assert first.exit_code == 1, first.output
    assert "give at least one of access" in fix_line(first.output)
    _recovered(run_playbook(site))


def test_open_before_recovery_fix(make_site: Maker, tmp_path: Path) -> None:
    site = make_site()

    def reopen_early(doc: dict[str, Any]) -> None:
        steps = {s["id"]: s for s in doc["steps"]}
        del steps["reopen"]["when"]
        doc["steps"] = [steps[i] for i in ("close", "enable_recovery", "restore", "reopen")]

    early = playbook_copy(PLAYBOOK, tmp_path, reopen_early)
    first = invoke("run", str(early), "--site", str(site), "--yes")
    assert first.exit_code in (1, 3), first.output
    fix = fix_line(first.output)
    assert "roll the database forward first (rollforward.recover)" in fix
    assert "--confirm" not in fix  # a confirmation would not let it open
    _recovered(run_playbook(site, "reopen=true"))


def test_clear_must_recover_fix_is_the_confirm_key(make_site: Maker, tmp_path: Path) -> None:
    site = make_site()

    def clear_without_recovery(doc: dict[str, Any]) -> None:
        steps = {s["id"]: s for s in doc["steps"]}
        clear = {
            "id": "clear",
            "action": "rollforward.set_flags",
            "args": {"databases": ["sales"], "must_recover": "disabled"},
        }
        doc["steps"] = [steps["close"], steps["restore"], clear]

    playbook = str(playbook_copy(PLAYBOOK, tmp_path, clear_without_recovery))
    first = invoke("run", playbook, "--site", str(site), "--yes")
    assert first.exit_code in (1, 3), first.output
    fix = fix_line(first.output)
    assert "--confirm rollforward-clear-must-recover" in fix
    confirmed = ("--confirm", "rollforward-clear-must-recover")
    _recovered(invoke("run", playbook, "--site", str(site), "--yes", *confirmed))
    with sqlite3.connect(site / "databases" / "sales.sqlite") as conn:
        assert conn.execute("SELECT must_recover FROM rf_flags").fetchone() == ("disabled",)
    conn.close()


def _break_missing(path: Path) -> None:
    path.unlink()


def _break_garbage(path: Path) -> None:
    path.write_bytes(b"not a database at all" * 100)


def _break_stamp(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE rf_flags SET backup_stamp = NULL")
    conn.close()


@pytest.mark.parametrize(
    ("damage", "fix"),
    [
        (_break_missing, "put the backup copy of stock at backups/stock.sqlite"),
        # the runner refuses to attach it before the action checks it
        (_break_garbage, "restore backups/stock.sqlite from a backup"),
        (_break_stamp, "at backups/stock.sqlite"),
    ],
)
def test_backup_copy_fix_supply_it(
    make_site: Maker, tmp_path: Path, damage: Callable[[Path], None], fix: str
) -> None:
    site = make_site()
    backup = site / "backups" / "stock.sqlite"
    kept = tmp_path / "stock-from-the-store.sqlite"
    shutil.copy(backup, kept)
    damage(backup)
    first = run_playbook(site)
    assert first.exit_code == 1, first.output
    assert fix in fix_line(first.output)
    shutil.copy(kept, backup)
    _recovered(run_playbook(site))


def _online_copies(site: Path, *names: str) -> None:
    """Restore from the online backup copies (taken mid-cycle) instead of the offline ones."""
    for name in names:
        shutil.copy(site / "backups-online" / f"{name}.sqlite", site / "backups" / f"{name}.sqlite")


def test_stop_before_the_online_copies_fix_names_the_earliest(make_site: Maker) -> None:
    site = make_site(files=3, online_backup=True)
    _online_copies(site, "sales", "stock", "staff")
    first = run_playbook(site, "stop_at=2026-01-05T08:00:00+00:00")
    assert first.exit_code == 1, first.output
    fix = fix_line(first.output)
    assert "give a stop time at or after " in fix, fix
    earliest = fix.split("at or after ")[1].split()[0]
    _recovered(run_playbook(site, f"stop_at={earliest}"))


def test_mixed_backup_points_fix_separate_steps(make_site: Maker, tmp_path: Path) -> None:
    site = make_site(files=3, online_backup=True)
    _online_copies(site, "sales")
    first = run_playbook(site)
    assert first.exit_code == 3, first.output
    assert "separate rollforward.recover steps, one per backup point" in fix_line(first.output)

    def split(doc: dict[str, Any]) -> None:
        at = next(i for i, s in enumerate(doc["steps"]) if s["id"] == "recover")
        step = doc["steps"][at]
        online = {**step, "id": "recover_online", "args": {**step["args"], "databases": ["sales"]}}
        offline = {
            **step,
            "id": "recover_offline",
            "args": {**step["args"], "databases": ["stock", "staff"]},
        }
        doc["steps"][at : at + 1] = [online, offline]

    _recovered(
        invoke("run", str(playbook_copy(PLAYBOOK, tmp_path, split)), "--site", str(site), "--yes")
    )


def test_wrong_log_set_fix_checks_the_argument(make_site: Maker) -> None:
    site = make_site()
    first = run_playbook(site, "log_set=dblogs")
    assert first.exit_code == 1, first.output
    assert "check the log_set argument" in fix_line(first.output)
    _recovered(run_playbook(site, "log_set=dblog"))


def test_first_log_file_missing_fix_supply_it(make_site: Maker, tmp_path: Path) -> None:
    site = make_site(files=3)
    shutil.move(site / "logs" / "dblog.1.log", tmp_path / "dblog.1.log")
    first = run_playbook(site)
    assert first.exit_code == 1, first.output
    fix = fix_line(first.output)
    assert "supply " in fix
    wanted = fix.split("supply ")[1].split()[0]
    assert wanted == "logs/dblog.1.log"
    shutil.move(tmp_path / "dblog.1.log", site / wanted)
    _recovered(run_playbook(site))


def test_online_start_file_missing_fix_supply_it(make_site: Maker, tmp_path: Path) -> None:
    site = make_site(files=3, online_backup=True)
    _online_copies(site, "sales", "stock", "staff")
    logs = sorted((site / "logs").glob("dblog.*.log"))
    aside = tmp_path / "aside"
    aside.mkdir()
    for log in logs:  # the online copies need none before theirs: take all away but the last
        shutil.move(log, aside / log.name)
    shutil.move(aside / logs[-1].name, logs[-1])
    refused = run_playbook(site)
    assert refused.exit_code == 1, refused.output  # the copies were taken before the last file
    assert "the online backup copy was taken while it was the log file in use" in refused.output
    fix = fix_line(refused.output)
    assert "supply " in fix, fix
    wanted = fix.split("supply ")[1].split()[0]
    shutil.move(aside / Path(wanted).name, site / wanted)
    _recovered(run_playbook(site))
