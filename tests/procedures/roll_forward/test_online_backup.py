"""A roll forward from an online backup copy starts after its quiesce point."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from tests.procedures.roll_forward.conftest import (
    DEFAULT_DBS,
    assert_matches,
    invoke,
    prepare,
    recover_step,
    run_playbook,
    scenario,
    write_playbook,
)


def _online_site(tmp_path: Path, seed: int) -> Path:
    """A generated site whose backups/ are the online copies, the files before the
    one in use at the backup archived and purged (gone from the site)."""
    site = tmp_path / f"site{seed}"
    result = invoke(
        "world", "rollforward", str(site), "--seed", str(seed), "--transactions", "160",
        "--rows", "20", "--files", "5", "--online-backup",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    for db in ("sales", "stock", "staff", "audit"):
        shutil.copy(site / "backups-online" / f"{db}.sqlite", site / "backups" / f"{db}.sqlite")
    return site


def _point(site: Path) -> tuple[int, int]:
    online = scenario(site)["online_backup"]
    return int(online["log_file"].split(".")[-2]), int(online["log_record"])


def test_the_flags_listing_shows_the_online_backup_point(tmp_path: Path) -> None:
    site = _online_site(tmp_path, 71)
    file_no, record = _point(site)
    conn = sqlite3.connect(site / "backups" / "sales.sqlite")
    row = conn.execute("SELECT log_file, log_record FROM rf_online_backup").fetchone()
    conn.close()
    assert row == (file_no, record)
    assert run_playbook(site).exit_code == 0
    listing = (site / "reports/rollforward/flags-after.txt").read_text()
    assert f"online backup: log file logs/dblog.{file_no}.log, after record {record}" in listing


def test_roll_forward_from_an_online_backup_without_the_earlier_files(tmp_path: Path) -> None:
    site = _online_site(tmp_path, 72)
    file_no, record = _point(site)
    assert file_no >= 2  # so there is something to purge
    for n in range(1, file_no):
        (site / "logs" / f"dblog.{n}.log").unlink()
    result = run_playbook(site)
    assert result.exit_code == 0, result.output
    assert f"starts after record {record} of logs/dblog.{file_no}.log" in result.output
    assert_matches(site)  # the same final content as from the cycle-start backup
    summary = (site / "reports/rollforward/summary.txt").read_text()
    assert "logs/dblog.1.log" not in summary
    conn = sqlite3.connect(site / "databases" / "sales.sqlite")
    first = conn.execute("SELECT min(first_record) FROM rf_recovery").fetchone()[0]
    conn.close()
    assert first > record  # nothing before the quiesce point was replayed


def test_online_and_offline_copies_cannot_share_one_roll_forward(tmp_path: Path) -> None:
    site = _online_site(tmp_path, 73)
    # stock from an offline copy: take the live database's cycle-start backup again
    invoke("world", "rollforward", str(tmp_path / "plain"), "--seed", "73",
           "--transactions", "160", "--rows", "20", "--files", "5")  # fmt: skip
    shutil.copy(tmp_path / "plain" / "backups" / "stock.sqlite", site / "backups" / "stock.sqlite")
    result = run_playbook(site)
    assert result.exit_code == 3, result.output
    assert "different points of the log" in result.output
    for db in DEFAULT_DBS:
        conn = sqlite3.connect(site / "databases" / f"{db}.sqlite")
        assert conn.execute("SELECT rolled_forward_to FROM rf_flags").fetchone()[0] is None
        conn.close()


def test_the_reader_process_starts_at_the_same_point(tmp_path: Path) -> None:
    """Read ahead in a second process from an online copy: the same outcome."""
    site = _online_site(tmp_path, 74)
    file_no, _record = _point(site)
    for n in range(1, file_no):
        (site / "logs" / f"dblog.{n}.log").unlink()
    prepare(site, tmp_path)
    book = write_playbook(tmp_path / "rf.yaml", recover_step(reader="process", batch_calls=7))
    result = run_playbook(site, playbook=book)
    assert result.exit_code == 0, result.output
    assert_matches(site)
