"""A plan's own reads of a catalog keep the plan's SQLite locks on it.

POSIX record locks belong to the process: closing any descriptor of a file
drops all of them. The rehearsal holds locks on the live catalogs while the
fingerprint and the preflight read them in helper threads; another program
must not be able to write a catalog in between.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from runner.engine.fingerprint import fingerprint
from runner.engine.heldfiles import keeping_sqlite_files_open
from runner.engine.planfile import _row_counts
from runner.engine.preflight import _truncated

WRITE_FROM_OUTSIDE = (
    "import sqlite3, sys\n"
    "conn = sqlite3.connect(sys.argv[1], timeout=0)\n"
    "conn.execute('BEGIN IMMEDIATE')\n"
)


def _outsider_can_write(db: Path) -> bool:
    done = subprocess.run(
        [sys.executable, "-c", WRITE_FROM_OUTSIDE, str(db)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0 or "database is locked" in done.stderr, done.stderr
    return done.returncode == 0


def _site(tmp_path: Path) -> tuple[Path, Path]:
    site = tmp_path / "site"
    (site / "catalog").mkdir(parents=True)
    db = site / "catalog" / "c.sqlite"
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("CREATE TABLE t (x)")
        conn.execute("INSERT INTO t VALUES (1)")
    conn.close()
    (site / "media.bin").write_bytes(b"not a catalog")
    return site, db


def _open_descriptors(path: Path) -> int:
    """How many of this process's descriptors are open on `path`."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the descriptor listdir itself used
            count += os.readlink(f"/proc/self/fd/{fd}") == str(path)
    return count


def test_closing_any_read_of_a_locked_catalog_drops_the_lock(tmp_path: Path) -> None:
    """The hazard itself, so that the test below means something."""
    _site_root, db = _site(tmp_path)
    conn = sqlite3.connect(db)
    conn.execute("BEGIN IMMEDIATE")  # a reserved lock, as the rehearsal holds
    try:
        assert not _outsider_can_write(db)
        with open(db, "rb") as handle:
            handle.read(16)
        assert _outsider_can_write(db)
    finally:
        conn.rollback()
        conn.close()


def test_fingerprint_and_header_checks_inside_a_plan_keep_its_locks(tmp_path: Path) -> None:
    site, db = _site(tmp_path)
    conn = sqlite3.connect(db)
    conn.execute("BEGIN IMMEDIATE")
    try:
        with keeping_sqlite_files_open():
            prints = fingerprint(site)
            assert _truncated(db, "catalog/c.sqlite") is None
            assert _row_counts(db) == {"t": 1}
            assert not _outsider_can_write(db)
            # the catalog's reads stay open (with the connection's own), the media
            # file's is closed at once
            assert _open_descriptors(db) >= 3
            assert _open_descriptors(site / "media.bin") == 0
    finally:
        conn.rollback()
        conn.close()
    assert _open_descriptors(db) == 0
    assert prints["catalog/c.sqlite"].startswith("sha256=")
    assert prints["media.bin"].startswith("sha256=")
    assert _outsider_can_write(db)
