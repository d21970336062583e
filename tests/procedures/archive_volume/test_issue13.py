"""Issue 13: clean_up leaves no reference to a removed volume; the pre report's
per-study totals; the attempt fetches the whole of a partially lost study.
Generated sites and one built by hand from the documented tables."""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

from tests.procedures.archive_volume.conftest import (
    csv_rows,
    make_site,
    query,
    run_cli,
    run_playbook,
)
from tests.procedures.archive_volume.handmade import build, dangling_volume_references, payload

VOL = "VOL0002"


def _run_handmade(root: Path, ranges: str) -> Any:
    return run_playbook(root, "--param", f"ranges_list={ranges}")


# -- 1. a removed volume is referenced by nothing --------------------------------------------


def test_whole_volume_recovered_leaves_no_reference(tmp_path: Path) -> None:
    root, scenario = make_site(tmp_path / "s", damaged_fraction=1.0, damage_ranges=1)
    vol = scenario["damaged_volume"]
    f_rows = scenario["expected"]["recoverable"]
    assert f_rows > 0
    result = run_playbook(root)
    assert result.exit_code == 0, result.output
    assert query(root, "SELECT count(*) FROM volumes WHERE volume_ref = ?", (vol,)) == [(0,)]
    assert query(root, "SELECT count(*) FROM object_locations WHERE volume_ref = ?", (vol,)) == [
        (0,)
    ]
    assert dangling_volume_references(root / "catalog.sqlite") == []
    assert f"its {f_rows:,} finished location(s) deleted" in result.output


def test_partly_damaged_volume_keeps_its_f_rows(site: tuple[Path, dict[str, Any]]) -> None:
    root, scenario = site
    vol = scenario["damaged_volume"]
    result = run_playbook(root)
    assert result.exit_code == 0, result.output
    assert query(root, "SELECT count(*) FROM volumes WHERE volume_ref = ?", (vol,)) == [(1,)]
    assert query(
        root, "SELECT count(*) FROM object_locations WHERE volume_ref = ? AND state = 'F'", (vol,)
    ) == [(scenario["expected"]["recoverable"],)]
    assert dangling_volume_references(root / "catalog.sqlite") == []


def test_handmade_site_whole_volume_removed_cleanly(tmp_path: Path) -> None:
    root = build(tmp_path / "hand")
    result = _run_handmade(root, "[{begin: 0}]")
    assert result.exit_code == 0, result.output
    assert query(root, "SELECT volume_ref FROM volumes ORDER BY 1") == [("VOL0001",), ("VOL0003",)]
    assert dangling_volume_references(root / "catalog.sqlite") == []
    # Lost: 4, 5, 6 (ST01), 7, 8 (ST02), 11 (ST03); recovered: 1-3 from VOL0001, 10 from cache.
    assert "Data loss: 6 objects" in result.output
    assert query(root, "SELECT object_id FROM objects ORDER BY 1") == [
        (1,),
        (2,),
        (3,),
        (9,),
        (10,),
    ]
    assert query(
        root, "SELECT study_ref, volume_ref, from_volume FROM archive_destinations ORDER BY 1"
    ) == [("ST01", "VOL0003", VOL), ("ST03", "VOL0003", VOL)]


def test_handmade_site_partial_damage_keeps_volume(tmp_path: Path) -> None:
    root = build(tmp_path / "hand")
    result = _run_handmade(root, "[{begin: 0, end: 4}, {begin: 6, end: 7}]")
    assert result.exit_code == 0, result.output
    assert query(root, "SELECT state, count(*) FROM object_locations WHERE volume_ref = ?"
                 " GROUP BY 1 ORDER BY 1", (VOL,)) == [("A", 3), ("F", 3)]  # fmt: skip
    assert dangling_volume_references(root / "catalog.sqlite") == []
    assert "Data loss: 4 objects" in result.output


# -- 2. the pre report's per-study figures -----------------------------------------------------


def test_handmade_pre_report_counts_whole_studies(tmp_path: Path) -> None:
    root = build(tmp_path / "hand")
    result = _run_handmade(root, "[{begin: 0, end: 4}, {begin: 6, end: 7}]")
    assert result.exit_code == 0, result.output
    rows = list(csv_rows(root / "reports" / "pre_report.csv"))
    assert rows[0][7:] == ["objects", "in_recovery", "recoverable", "unrecoverable", "locations"]
    body = {r[0]: r for r in rows[1:] if r and r[0].startswith("ST")}
    assert set(body) == {"ST01", "ST02"}  # ST03 is intact: not in recovery
    assert body["ST01"][7:11] == ["6", "5", "3", "2"]
    assert body["ST01"][11].split("; ") == [
        "1 VOL0002:0:R copies VOL0001:0:A",
        "2 VOL0002:1:R copies VOL0001:1:A",
        "3 VOL0002:2:R copies VOL0001:2:A",
        "4 VOL0002:3:R copies none",
        "5 VOL0002:4:R copies none",
        "6 VOL0002:5:A copies none",
    ]
    assert body["ST02"][7:11] == ["3", "2", "0", "2"]
    assert body["ST02"][11].split("; ") == [
        "7 VOL0002:6:R copies none",
        "8 VOL0002:7:R copies none",
        "9 - copies VOL0001:3:A",
    ]
    total = next(r for r in rows if r and r[0] == "TOTAL")
    assert total[7:] == ["9", "7", "3", "4", "2 studies, 1 recoverable"]
    text = (root / "reports" / "pre_report.txt").read_text()
    assert "Studies in recovery:   2\n  recoverable:         1 (" in text
    assert "STUDY ST01  objects 6  in recovery 5  recoverable 3  unrecoverable 2\n" in text
    assert "VOL0002:5:A" in text and "not affected  copies: none" in text
    assert "  object 9          -" in text


# -- 3. the attempt gathers the whole of a partially lost study --------------------------------


def _attempt_outputs(root: Path) -> dict[str, Any]:
    result = run_cli("status", "--site", root, "--json")
    steps = json.loads(result.output)["runs"][0]["steps"]
    return next(s for s in steps if s["step_id"] == "attempt")["outputs"]


def test_attempt_fetches_whole_studies_on_a_generated_site(
    site: tuple[Path, dict[str, Any]],
) -> None:
    root, scenario = site
    vol, exp = scenario["damaged_volume"], scenario["expected"]
    affected = sorted(scenario["studies"])
    intact_parts = query(
        root,
        "SELECT count(*) FROM objects o WHERE o.study_ref IN (SELECT value FROM json_each(?))"
        " AND NOT EXISTS (SELECT 1 FROM object_locations l WHERE l.object_id = o.object_id"
        "  AND l.volume_ref = ? AND l.ordinal IN (SELECT value FROM json_each(?)))",
        (
            json.dumps(affected),
            vol,
            json.dumps(
                [o for r in scenario["unreadable_ranges"] for o in range(r["begin"], r["end"] + 1)]
            ),
        ),
    )[0][0]
    assert intact_parts > 0
    result = run_playbook(root)
    assert result.exit_code == 0, result.output
    # Every object left of every affected study is in cache with verified bytes:
    # the recovered ones and the parts that were never lost.
    left = query(
        root,
        "SELECT study_ref, object_id, checksum FROM objects"
        " WHERE study_ref IN (SELECT value FROM json_each(?))",
        (json.dumps(affected),),
    )
    assert len(left) == exp["objects_of_affected_studies"] - exp["unrecoverable"]
    for study_ref, object_id, checksum in left:
        data = (root / "cache" / study_ref / str(object_id)).read_bytes()
        assert f"{zlib.crc32(data):08x}" == checksum
    outputs = _attempt_outputs(root)
    assert outputs["recovered"] == exp["recoverable"]
    assert outputs["intact_in_cache"] == intact_parts
    assert outputs["intact_not_fetched"] == 0
    # Loss accounting is about the objects in recovery only.
    assert f"Data loss: {exp['unrecoverable']} objects" in result.output
    # A study with nothing recoverable but cached intact parts gets an evictable entry.
    assert query(root, "SELECT count(*) FROM cache_locations WHERE protected = 1") == [(0,)]


def test_handmade_attempt_fetches_from_the_volume_first(tmp_path: Path) -> None:
    root = build(tmp_path / "hand")
    # Object 1 (ST01) is readable on VOL0002 and has a copy on VOL0001: spoil its block on
    # VOL0002 so the order shows: the recovered volume is tried first, then the copy.
    media = root / "volumes" / "VOL0002.vol"
    raw = bytearray(media.read_bytes())
    raw[64 + 0 * 128 + 24] ^= 0xFF
    media.write_bytes(bytes(raw))
    result = _run_handmade(root, "[{begin: 3, end: 4}, {begin: 6, end: 6}]")
    assert result.exit_code == 0, result.output
    log = "".join(p.read_text() for p in (root / ".recover" / "logs").glob("*.log"))
    assert "object 1: VOL0002: block 0 is corrupt" in log  # tried first, then VOL0001
    # ST01: 4 and 5 lost; 1-3 and 6 gathered. ST02: 7 lost; 8 from VOL0002, 9 from VOL0001.
    assert "Data loss: 3 objects" in result.output
    for study, objects in {"ST01": [1, 2, 3, 6], "ST02": [8, 9]}.items():
        for object_id in objects:
            assert (root / "cache" / study / str(object_id)).read_bytes() == payload(object_id)
    # ST03 is intact: only its object 10, cached from the start, is in cache.
    assert [p.name for p in (root / "cache" / "ST03").iterdir()] == ["10"]
    outputs = _attempt_outputs(root)
    assert (outputs["recovered"], outputs["intact_in_cache"]) == (0, 6)
    assert query(root, "SELECT study_ref, objects_affected, objects_copied FROM send_jobs"
                 " ORDER BY 1") == [("ST01", 2, 0), ("ST02", 1, 0)]  # fmt: skip
    assert query(root, "SELECT study_ref, protected FROM cache_locations ORDER BY 1") == [
        ("ST01", 0),
        ("ST02", 0),
        ("ST03", 0),
    ]
