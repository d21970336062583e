"""A full disk, a read-only site, a stray SQLite super-journal: clean messages
whose fix works, and nothing lost for the run that follows."""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from runner.engine import journal, media
from tests.helpers import PLAYBOOKS_DIR, assert_clean, invoke, snapshot, steps_of

KEYED = PLAYBOOKS_DIR / "keyed-file-repair.yaml"


def _site(tmp_path: Path, name: str) -> Path:
    site = tmp_path / name
    made = invoke("world", "keyed", site, "--records", "2000", "--damage", "eof,dangling,missing")
    assert made.exit_code == 0, made.output
    return site


def test_a_full_disk_mid_run_is_a_clean_error_and_the_rerun_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RECOVER_EXTRA_PROCEDURES", raising=False)
    monkeypatch.setenv("RECOVER_NOW", "2026-03-15T12:00:00+00:00")
    site, whole = _site(tmp_path, "site"), _site(tmp_path, "whole")
    real = media._create_fresh
    calls = {"n": 0}

    def full(tmp: Path, mode: int) -> int:
        calls["n"] += 1
        if calls["n"] >= 3:  # the third file written: the disk fills up
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
        return real(tmp, mode)

    monkeypatch.setattr(media, "_create_fresh", full)
    failed = invoke("run", KEYED, "--site", site, "--yes")
    assert failed.exit_code == 1
    assert_clean(failed)
    assert "no space left on device at " in failed.stderr
    assert "free space and run the same command again" in failed.stderr
    monkeypatch.setattr(media, "_create_fresh", real)
    again = invoke("run", KEYED, "--site", site, "--yes")
    assert again.exit_code == 0, again.output
    assert invoke("run", KEYED, "--site", whole, "--yes").exit_code == 0
    files = {k: v for k, v in snapshot(site, state=False).items() if not k.startswith("reports")}
    expected = {
        k: v for k, v in snapshot(whole, state=False).items() if not k.startswith("reports")
    }
    assert files == expected
    assert {s["state"] for s in steps_of(site).values()} <= {"done", "skipped"}


def test_a_read_only_file_system_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECOVER_EXTRA_PROCEDURES", raising=False)
    site = _site(tmp_path, "site")

    def read_only(tmp: Path, mode: int) -> int:
        raise OSError(errno.EROFS, "Read-only file system", str(tmp))

    monkeypatch.setattr(media, "_create_fresh", read_only)
    result = invoke("run", KEYED, "--site", site, "--yes")
    assert result.exit_code == 1
    assert_clean(result)
    assert "the site is on a read-only file system at " in result.stderr
    assert "remount it read-write" in result.stderr


@pytest.mark.parametrize(
    ("name", "says", "fix"),
    [
        ("SQLITE_FULL", "no space left on the device", "free space there"),
        ("SQLITE_READONLY", "cannot be written", "make the site writable"),
        ("SQLITE_NOTADB", "is unreadable", "move"),
    ],
)
def test_journal_errors_say_what_to_do(tmp_path: Path, name: str, says: str, fix: str) -> None:
    exc: Any = sqlite3.OperationalError("boom")
    exc.sqlite_errorname = name
    error = journal.journal_error(exc, tmp_path / ".recover" / "journal.sqlite")
    assert says in error.message and error.fix and fix in error.fix
    if name != "SQLITE_NOTADB":
        assert "aside" not in error.fix  # that would throw away what resume needs


def test_a_stale_super_journal_is_removed_and_a_live_one_kept(tmp_path: Path) -> None:
    state = tmp_path / ".recover"
    state.mkdir()
    stale = state / "journal.sqlite-mj0A1B2C3D"
    stale.write_bytes(os.fsencode(str(tmp_path / "catalog.sqlite-journal")) + b"\0")
    live_child = tmp_path / "other.sqlite-journal"
    live_child.write_bytes(b"hot")
    live = state / "journal.sqlite-mj4E5F6A7B"
    live.write_bytes(os.fsencode(str(live_child)) + b"\0")
    journal.connect(state / "journal.sqlite").close()
    assert not stale.exists()
    assert live.exists()
