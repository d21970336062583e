"""The shipped playbook on a generated site, checked against scenario.json."""

from __future__ import annotations

import json
import os
from pathlib import Path

from runner.procedures.case_archive import media
from runner.procedures.case_archive.world import Options, generate

from .conftest import PLAYBOOK, Site, outputs, recover, run_playbook, snapshot


def tape_records(site: Site, label: str) -> list[str]:
    with open(site.root / "tapes" / f"{label}.tape", "rb") as handle:
        return [info.relpath for _backup, info in media.scan(handle) if info.problem is None]


def test_playbook_matches_the_scenario(site: Site) -> None:
    result = run_playbook(site)
    assert result.exit_code == 0, result.output
    want = site.scenario["playbook"]
    store, write, restore = (outputs(site, s) for s in ("store", "write", "restore"))
    for key, value in want["store"].items():
        assert store[key] == value, key
    for key, value in want["write"].items():
        assert write[key] == value, key
    for key, value in want["restore"].items():
        assert restore[key] == value, key
    assert restore["corrupt"] == restore["missing"] == 0
    # the cache is empty; every restored file is the ingest file, byte for byte
    assert not [p for p in (site.root / "cache").rglob("*") if p.is_file()]
    case = site.root / want["directory"]
    restored = sorted(p for p in case.rglob("*.dat"))
    assert len(restored) == want["restore"]["files"]
    for path in restored:
        rel = path.relative_to(case)
        assert path.read_bytes() == (site.root / "ingest" / rel).read_bytes()
    # the common data as relative symbolic links inside the site, not a LINKS file
    assert not (case / "LINKS").exists()
    for common in ("common/maps", "common/colormaps"):
        link = case / common.rsplit("/", 1)[-1]
        assert link.is_symlink() and os.readlink(link) == f"../../{common}"
        assert link.resolve() == (site.root / common).resolve()
        assert (link / "README").read_text() == f"common display data: {common}\n"
    # every file on the current tape exactly once
    records = tape_records(site, site.scenario["tapes"]["current"])
    assert len(records) == len(set(records))
    text = (site.root / "reports" / "cases-tape-write.txt").read_text()
    assert f"({want['write']['tape_percent']}%)" in text


def test_plan_changes_nothing(site: Site) -> None:
    before = snapshot(site.root)
    result = recover("plan", PLAYBOOK, "--site", site.root)
    assert result.exit_code == 0, result.output
    assert "would copy 10 file(s) under cache/" in result.output
    assert "would write 1 file(s) under tapes/" in result.output
    assert "would copy 12 file(s) under restore/" in result.output
    assert snapshot(site.root) == before


def test_second_run_does_nothing(site: Site) -> None:
    assert run_playbook(site).exit_code == 0
    before = snapshot(site.root)
    result = run_playbook(site)
    assert result.exit_code == 0
    assert snapshot(site.root) == before


def test_world_is_deterministic(tmp_path: Path) -> None:
    one = generate(tmp_path / "a", Options(seed=3, products=5))
    two = generate(tmp_path / "b", Options(seed=3, products=5))
    assert one == two
    result = recover("world", "cases", tmp_path / "c", "--seed", "3", "--products", "5")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "c" / "scenario.json").read_text()) == one
    assert recover("world", "cases", tmp_path / "d", "--products", "2").exit_code == 2


def test_world_tapes_scan_with_the_one_corrupt_record(site: Site) -> None:
    with open(site.root / "tapes" / f"{site.scenario['tapes']['current']}.tape", "rb") as h:
        found = list(media.scan(h))
    bad = [info for _b, info in found if info.problem]
    assert len(bad) == 1 and "checksum" in (bad[0].problem or "")
    assert len(found) == site.scenario["sessions"]["hail case"]["files"]
