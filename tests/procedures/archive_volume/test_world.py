"""The world generator: deterministic, and scenario.json agrees with a plain
Python recomputation from the catalog."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from runner.cli import cli
from runner.errors import SiteError, UsageError
from runner.procedures.archive_volume.world import Options, generate
from tests.procedures.archive_volume.conftest import make_site, snapshot


def test_same_seed_same_site_other_seed_other_site(tmp_path: Path) -> None:
    a, _ = make_site(tmp_path / "a", seed=5)
    b, _ = make_site(tmp_path / "b", seed=5)
    c, _ = make_site(tmp_path / "c", seed=6)
    assert snapshot(a) == snapshot(b)
    assert snapshot(a)["catalog.sqlite"] != snapshot(c)["catalog.sqlite"]


def test_scenario_matches_an_independent_recomputation(tmp_path: Path) -> None:
    root, scenario = make_site(tmp_path / "s", studies=150, seed=5)
    db = sqlite3.connect(root / "catalog.sqlite")
    vol = scenario["damaged_volume"]
    ranges = [(r["begin"], r["end"]) for r in scenario["unreadable_ranges"]]
    owner = dict(db.execute("SELECT object_id, study_ref FROM objects"))
    cached = {r[0] for r in db.execute("SELECT object_id FROM cached_objects")}
    where: dict[int, set[str]] = {}
    hit: set[int] = set()
    for ref, ordinal, obj in db.execute(
        "SELECT volume_ref, ordinal, object_id FROM object_locations"
    ):
        where.setdefault(obj, set()).add(ref)
        if ref == vol and any(b <= ordinal <= e for b, e in ranges):
            hit.add(obj)
    per: dict[str, list[int]] = {}
    for obj in hit:
        good = obj in cached or len(where[obj] - {vol}) > 0
        per.setdefault(owner[obj], [0, 0])
        per[owner[obj]][0] += 1
        per[owner[obj]][1] += int(good)
    assert {s: (v["objects"], v["recoverable"]) for s, v in scenario["studies"].items()} == {
        s: tuple(v) for s, v in per.items()
    }
    exp = scenario["expected"]
    assert exp["objects_affected"] == len(hit)
    assert exp["recoverable"] == sum(v[1] for v in per.values())
    # The site is realistic: every kind of outcome, several carriers, a cache.
    assert exp["fully_recovered_studies"] and exp["partially_recovered_studies"]
    assert exp["unrecoverable_studies"]
    assert len({r[0] for r in db.execute("SELECT carrier_id FROM carriers")}) >= 3
    assert db.execute("SELECT count(*) FROM volumes WHERE status = 'open'").fetchone() == (1,)
    assert db.execute(
        "SELECT status, online FROM volumes WHERE volume_ref = ?", (vol,)
    ).fetchone() == ("closed", 0)
    assert cached and len({r[0] for r in db.execute("SELECT DISTINCT modality FROM studies")}) > 3
    # archived_count is the number of good locations of each study.
    assert db.execute(
        "SELECT count(*) FROM studies s WHERE archived_count <> (SELECT count(*) FROM objects o"
        " JOIN object_locations l USING (object_id) WHERE o.study_ref = s.study_ref)"
    ).fetchone() == (0,)
    db.close()
    assert json.loads((root / "scenario.json").read_text()) == scenario


def test_catalog_only_mode_writes_no_media(tmp_path: Path) -> None:
    root, scenario = make_site(tmp_path / "s", media="none")
    assert not any((root / "volumes").iterdir()) and not any((root / "cache").iterdir())
    _full, same = make_site(tmp_path / "f")
    assert scenario["expected"] == same["expected"]


def test_bad_options_and_non_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--damaged"):
        generate(tmp_path / "x", Options(damaged="VOL0006"))
    with pytest.raises(UsageError, match="objects-per-study"):
        generate(tmp_path / "x", Options(objects_min=5, objects_max=2))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "file").write_text("x")
    with pytest.raises(SiteError, match="not empty"):
        generate(tmp_path / "full", Options())


def test_world_command(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "world",
            "archive",
            str(tmp_path / "w"),
            "--seed",
            "9",
            "--studies",
            "30",
            "--objects-per-study",
            "2-5",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "damaged volume VOL0002" in result.output
    scenario = json.loads((tmp_path / "w" / "scenario.json").read_text())
    assert scenario["options"]["seed"] == 9 and scenario["options"]["objects_max"] == 5
    bad = CliRunner().invoke(
        cli, ["world", "archive", str(tmp_path / "v"), "--objects-per-study", "x"]
    )
    assert bad.exit_code == 2 and "Traceback" not in bad.output


def test_demo_case_runs_the_shipped_playbook(tmp_path: Path) -> None:
    from runner.procedures.archive_volume import PLAYBOOK, PROCEDURE

    assert PROCEDURE.demo is not None
    (case,) = PROCEDURE.demo(tmp_path / "demo")
    assert case.playbook == PLAYBOOK and PLAYBOOK.exists()
    assert (case.site / "scenario.json").exists()
    result = CliRunner().invoke(cli, ["run", str(case.playbook), "--site", str(case.site), "--yes"])
    assert result.exit_code == 0, result.output
