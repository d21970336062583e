"""Bad input gives a clear error, the right exit code, and changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import PLAYBOOK, Site, playbook, recover, run_playbook, run_steps, snapshot

CURRENT = "Archive_pool_2_2"


def truncated_tape(site: Site) -> None:
    path = site.root / "tapes" / f"{CURRENT}.tape"
    path.write_bytes(path.read_bytes()[:-100])


def torn_header(site: Site) -> None:
    path = site.root / "tapes" / f"{CURRENT}.tape"
    data = bytearray(path.read_bytes())
    data[12] ^= 0x55
    path.write_bytes(bytes(data))


def missing_tape(site: Site) -> None:
    (site.root / "tapes" / f"{CURRENT}.tape").unlink()


def missing_ingest(site: Site) -> None:
    (site.root / "ingest" / "lightning" / "20260309" / "lightning_1200.dat").unlink()


def hostile_ingest_path(site: Site) -> None:
    site.execute(
        "UPDATE products SET relpath = '../../x' "
        "WHERE relpath = 'lightning/20260309/lightning_1200.dat'"
    )


def hostile_cache_dir(site: Site) -> None:
    site.setting("cache_dir", "../../elsewhere")


def not_a_catalog(site: Site) -> None:
    (site.root / "catalog.sqlite").write_bytes(b"this is not sqlite" * 100)


CASES: dict[str, tuple[Callable[[Site], None], str]] = {
    "truncated tape": (truncated_tape, "truncated tape"),
    "torn tape header": (torn_header, "tape header fails its checksum"),
    "missing tape": (missing_tape, f"tapes/{CURRENT}.tape is missing"),
    "missing ingest file": (missing_ingest, "lightning_1200.dat"),
    "hostile ingest path": (hostile_ingest_path, "leaves the site directory"),
    "hostile cache dir": (hostile_cache_dir, "cache_dir '../../elsewhere' leaves the site"),
    "not a catalog": (not_a_catalog, "not a readable SQLite database"),
}


TAPE_DAMAGE = {"truncated tape", "torn tape header", "missing tape"}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_site_is_refused_and_unchanged(site: Site, case: str, tmp_path: Path) -> None:
    """Tape damage is met by the tape write (the store before it would succeed)."""
    damage, message = CASES[case]
    damage(site)
    before = snapshot(site.root)
    book = PLAYBOOK
    if case in TAPE_DAMAGE:
        book = playbook(tmp_path, [{"id": "write", "action": "cases.write_tape", "args": {}}])
    plan = recover("plan", book, "--site", site.root)
    assert plan.exit_code == 1, plan.output
    result = run_playbook(site, playbook=book)
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert snapshot(site.root) == before


@pytest.mark.parametrize("name", ["../../x", "/etc/passwd", ".hidden", "a/b"])
def test_hostile_case_name_is_refused(site: Site, name: str, tmp_path: Path) -> None:
    before = snapshot(site.root)
    restore = {"id": "r", "action": "cases.restore", "args": {"session": "hail case", "case": name}}
    result = run_steps(site, tmp_path, [restore])
    assert result.exit_code == 1, result.output
    assert "does not match" in result.output
    assert snapshot(site.root) == before


def test_unknown_product_and_session(site: Site, tmp_path: Path) -> None:
    before = snapshot(site.root)
    result = run_playbook(site, "--param", "products=[radar_z]")
    assert result.exit_code == 1 and "unknown: radar_z" in result.output
    restore = {"id": "r", "action": "cases.restore", "args": {"session": "nope", "case": "c"}}
    result = run_steps(site, tmp_path, [restore], "--new-run")
    assert result.exit_code == 1 and "no store session 'nope'" in result.output
    assert snapshot(site.root) == before


def test_bad_time_is_a_clear_error(site: Site) -> None:
    before = snapshot(site.root)
    result = run_playbook(site, "--param", "time_from=yesterday-ish")
    assert result.exit_code in (1, 2), result.output
    assert "not an ISO date-time" in result.output
    assert snapshot(site.root) == before
