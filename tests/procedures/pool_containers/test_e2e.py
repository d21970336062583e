"""End to end through the CLI: the shipped playbook on generated repositories."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from runner.procedures.pool_containers import media
from runner.procedures.pool_containers.world.generator import data_for

from .conftest import (
    PLAYBOOK,
    Site,
    catalog_dump,
    outputs,
    recover,
    run_playbook,
    snapshot,
    tree,
)

FIXED = {"fix"}
LEFT = {"refused_window", "interactive"}


def element_state(site: Site, path: str) -> dict[str, Any]:
    """An element's catalog rows: versions (with data state) and containers."""
    versions = site.query(
        """SELECT b.name, v.number, v.data FROM versions v JOIN branches b ON b.id = v.branch_id
           JOIN elements e ON e.id = b.element_id WHERE e.path = ? ORDER BY 1, 2""",
        path,
    )
    containers = site.query(
        """SELECT c.pool, c.relpath, c.type_manager,
                  (SELECT group_concat(b.name || '/' || v.number, ' ') FROM container_versions cv
                   JOIN versions v ON v.id = cv.version_id JOIN branches b ON b.id = v.branch_id
                   WHERE cv.container_id = c.id)
           FROM containers c JOIN elements e ON e.id = c.element_id
           WHERE e.path = ? ORDER BY c.id""",
        path,
    )
    return {"versions": versions, "containers": containers}


def assert_container_holds_catalog_data(site: Site, path: str) -> None:
    """Every referenced container exists, has the element's identity and exactly the
    versions the catalog lists, with the original content (checked against the
    generator's own content function, not against anything the fix wrote)."""
    (oid, tm) = site.query("SELECT oid, type_manager FROM elements WHERE path = ?", path)[0]
    for pool, relpath, ctm, listed in element_state(site, path)["containers"]:
        blob = (site.root / "pools" / pool / relpath).read_bytes()
        header = media.parse(blob, relpath)
        assert (header.oid, header.type_manager) == (oid, tm) == (oid, ctm)
        assert sorted(f"{b}/{n}" for b, n in header.held()) == sorted(listed.split())
        assert media.corrupt_in(blob, header) == []
        for entry in header.entries:
            start = header.data_start + entry.offset
            raw = media.unstore(tm, blob[start : start + entry.stored], entry.raw)
            assert raw == data_for(oid, entry.branch, entry.number)


def lost_found(site: Site) -> list[str]:
    return sorted(
        p.relative_to(site.root).as_posix()
        for p in (site.root / "pools").glob("*/lost+found/**/*")
        if p.is_file()
    )


def test_run_matches_the_scenario(site: Site, template_site: Site) -> None:
    result = run_playbook(site)
    assert result.exit_code == 0, result.output
    expected = site.scenario["expected"]
    check, fix = outputs(site, "check"), outputs(site, "fix")
    assert {k: check[k] for k in expected["check"]} == expected["check"]
    assert {k: fix[k] for k in expected["fix"]} == expected["fix"]
    for path, want in site.scenario["damaged"].items():
        after = element_state(site, path)
        if want["outcome"] in FIXED:
            assert_container_holds_catalog_data(site, path)
            gone = sorted(f"{b}/{n}" for b, n, data in after["versions"] if data == "gone")
            assert gone == sorted(want["lost_accepted"]), path
        elif want["outcome"] in LEFT:
            assert after == element_state(template_site, path), f"{path} must be left as is"
    assert len(lost_found(site)) == expected["fix"]["alternates_moved"]


def test_each_category_gets_its_match(site: Site) -> None:
    assert run_playbook(site).exit_code == 0
    text = (site.root / "reports" / "pools-fix.txt").read_text()
    per_element = text.split("Per element\n-----------\n", 1)[1]
    blocks = {b.split("\n", 1)[0].split(" (")[0]: b for b in per_element.split("\n\n")}
    for path, want in site.scenario["damaged"].items():
        if not want["matches"]:
            continue
        block = blocks[path]
        assert [
            line.split("match: ")[1].split()[0] for line in block.splitlines() if "match: " in line
        ] == want["matches"], path
    for path in site.scenario["categories"]["branch_guard"]:
        assert "would lose all versions above 0" in blocks[path]
    for path in site.scenario["categories"]["subset_old"]:
        assert "loss REFUSED" in blocks[path]


def test_versions_csv_lists_every_unrebuildable_version(site: Site) -> None:
    assert run_playbook(site).exit_code == 0
    lines = (site.root / "reports" / "pools-fix-versions.csv").read_text().splitlines()
    assert lines[0].startswith("element,branch,number,version_id,created_at,window")
    rows = [line.split(",") for line in lines[1:]]
    fix = site.scenario["expected"]["fix"]
    refused = [r for r in rows if r[5] == "refused"]
    gone = [r for r in rows if r[6] == "yes"]
    assert len(refused) == fix["versions_lost_refused"]
    assert len(gone) == fix["versions_lost"]
    window = site.since.replace("+00:00", "Z")
    assert all(r[4] < window for r in refused) and all(r[4] >= window for r in gone)


def test_plan_changes_nothing_and_predicts_the_run(site: Site, tmp_path: Path) -> None:
    before = snapshot(site.root)
    saved = tmp_path / "plan.json"
    plan = recover(
        "plan", PLAYBOOK, "--site", site.root, "--param", f"since={site.since}", "-o", saved
    )
    assert plan.exit_code == 0, plan.output
    assert snapshot(site.root) == before, "a dry run must not change one byte"
    predicted = {s["id"]: s for s in json.loads(saved.read_text())["steps"]}
    assert run_playbook(site).exit_code == 0
    for step in ("check", "fix"):
        real = outputs(site, step)
        guess = predicted[step]["outputs"]
        assert {k: v for k, v in guess.items() if k != "reports"} == {
            k: v for k, v in real.items() if k != "reports"
        }
    assert predicted["fix"]["loss"] == {
        "versions": site.scenario["expected"]["fix"]["versions_lost"]
    }


def test_report_only_changes_nothing_but_reports(site: Site, tmp_path: Path) -> None:
    playbook = tmp_path / "report.yaml"
    playbook.write_text(
        "version: 1\nname: pools-report\nsite: {catalog: catalog.sqlite}\nsteps:\n"
        "  - id: fix\n    action: pools.fix\n    args: {force: true, allow_missing_data_since: "
        f"'{site.since}'}}\n"
    )
    files, catalog = snapshot(site.root)
    result = recover("run", playbook, "--site", site.root, "--yes")
    assert result.exit_code == 0, result.output
    after_files, after_catalog = snapshot(site.root)
    assert after_catalog == catalog
    added = set(after_files) - set(files)
    assert added == {"reports/pools-fix.txt", "reports/pools-fix-versions.csv"}
    assert {k: after_files[k] for k in files} == files
    out = outputs(site, "fix")
    assert out["elements_fixed"] == 0 and out["changed"] is False
    assert out["match_identical"] == site.scenario["expected"]["fix"]["match_identical"]
    assert "Report only: nothing was changed" in (site.root / "reports/pools-fix.txt").read_text()


def test_named_element_without_force_lifts_only_the_branch_guard(
    site: Site, tmp_path: Path
) -> None:
    guard = site.scenario["categories"]["branch_guard"][0]
    old = site.scenario["categories"]["lost_old"][0]
    other = site.scenario["categories"]["identical"][0]
    playbook = tmp_path / "one.yaml"
    playbook.write_text(
        "version: 1\nname: pools-one\nsite: {catalog: catalog.sqlite}\n"
        "safety: {allow_loss: {versions: 10}}\nsteps:\n"
        "  - id: fix\n    action: pools.fix\n    args:\n      fix: true\n"
        f"      allow_missing_data_since: '{site.since}'\n"
        f"      elements: ['{guard}', '{old}']\n"
    )
    before_other = element_state(site, other)
    before_old = element_state(site, old)
    result = recover("run", playbook, "--site", site.root, "--yes")
    assert result.exit_code == 0, result.output
    gone = [(b, n) for b, n, d in element_state(site, guard)["versions"] if d == "gone"]
    assert gone == [("/main/dev", 1), ("/main/dev", 2)]
    assert element_state(site, old) == before_old  # the window still refuses it
    assert element_state(site, other) == before_other  # not named: untouched
    assert outputs(site, "fix")["elements_fixed"] == 1


def test_wide_window_needs_confirmation(site: Site) -> None:
    before = snapshot(site.root)
    result = run_playbook(site, since="2025-12-01")
    assert result.exit_code == 3
    assert "wide_loss_window" in result.output
    assert snapshot(site.root)[1] == before[1]
    assert {k: v for k, v in snapshot(site.root)[0].items() if k.startswith("pools/")} == {
        k: v for k, v in before[0].items() if k.startswith("pools/")
    }
    result = run_playbook(site, "--confirm", "wide_loss_window", since="2025-12-01")
    assert result.exit_code == 0, result.output
    fix = outputs(site, "fix")
    expected = site.scenario["expected"]["fix"]
    assert fix["elements_refused_window"] == 0
    assert fix["elements_fixed"] == expected["elements_fixed"] + expected["elements_refused_window"]


def test_loss_budget_refuses_and_changes_nothing(site: Site) -> None:
    before = snapshot(site.root)
    result = run_playbook(site, "--param", "max_lost_versions=1")
    assert result.exit_code == 3, result.output
    files, catalog = snapshot(site.root)
    assert catalog == before[1]
    assert {k: v for k, v in files.items() if not k.startswith("reports/pools-check")} == {
        k: v for k, v in before[0].items()
    }


def test_second_fix_changes_nothing_more(site: Site) -> None:
    assert run_playbook(site).exit_code == 0
    dump, pools = (
        catalog_dump(site.root),
        {k: v for k, v in tree(site.root).items() if k.startswith("pools/")},
    )
    again = run_playbook(site, "--new-run")
    assert again.exit_code == 0, again.output
    assert catalog_dump(site.root) == dump
    assert {k: v for k, v in tree(site.root).items() if k.startswith("pools/")} == pools
    check = outputs(site, "check")
    left = [p for p, w in site.scenario["damaged"].items() if w["outcome"] in LEFT]
    assert check["elements_with_missing"] == len(left)


def test_world_is_deterministic_and_validates_its_options(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for where in (a, b):
        result = recover("world", "pools", where, "--seed", "3", "--elements", "20")
        assert result.exit_code == 0, result.output
    assert tree(a) == tree(b) and catalog_dump(a) == catalog_dump(b)
    too_few = recover("world", "pools", tmp_path / "c", "--elements", "5")
    assert too_few.exit_code == 2 and "too few" in too_few.output


def test_demo_case_runs_clean(tmp_path: Path) -> None:
    from runner.procedures.pool_containers import PROCEDURE

    assert PROCEDURE.demo is not None
    (case,) = PROCEDURE.demo(tmp_path / "demo")
    args = [f"--param={k}={v}" for k, v in case.params.items()]
    result = recover("run", case.playbook, "--site", case.site, "--yes", *args)
    assert result.exit_code == 0, result.output
    scenario = json.loads((case.site / "scenario.json").read_text())
    fix = outputs(Site(case.site, scenario), "fix")
    assert fix["elements_fixed"] == scenario["expected"]["fix"]["elements_fixed"]
    assert (case.site / "reports" / "pools-fix.txt").exists()


def test_plan_of_fix_then_check_sees_its_own_changes(site: Site, tmp_path: Path) -> None:
    """In a dry run the second step reads the first one's writes and moves (the overlay)."""
    playbook = tmp_path / "fix-check.yaml"
    playbook.write_text(
        "version: 1\nname: pools-fix-check\nsite: {catalog: catalog.sqlite}\n"
        "safety: {allow_loss: {versions: unlimited}}\nsteps:\n"
        "  - id: fix\n    action: pools.fix\n    args: {force: true, fix: true, "
        f"allow_missing_data_since: '{site.since}'}}\n"
        "  - id: check\n    action: pools.check\n    args: {report: reports/after.txt}\n"
    )
    saved = tmp_path / "plan.json"
    before = snapshot(site.root)
    assert recover("plan", playbook, "--site", site.root, "-o", saved).exit_code == 0
    assert snapshot(site.root) == before
    predicted = {s["id"]: s["outputs"] for s in json.loads(saved.read_text())["steps"]}
    assert recover("run", playbook, "--site", site.root, "--yes").exit_code == 0
    real = outputs(site, "check")
    left = [p for p, w in site.scenario["damaged"].items() if w["outcome"] in LEFT]
    assert real["elements_with_missing"] == len(left)
    assert {k: v for k, v in predicted["check"].items() if k != "report"} == {
        k: v for k, v in real.items() if k != "report"
    }


def test_check_options(site: Site, tmp_path: Path) -> None:
    playbook = tmp_path / "check.yaml"
    playbook.write_text(
        "version: 1\nname: pools-check\nsite: {catalog: catalog.sqlite}\nsteps:\n"
        "  - id: check\n    action: pools.check\n"
        "    args: {pools: [s2], verify_digests: false, report: out/check.txt}\n"
    )
    result = recover("run", playbook, "--site", site.root, "--yes")
    assert result.exit_code == 0, result.output
    out = outputs(site, "check")
    in_s2 = site.query("SELECT count(*) FROM containers WHERE pool = 's2'")[0][0]
    assert (
        out["containers_checked"]
        == in_s2
        < site.scenario["expected"]["check"]["containers_checked"]
    )
    assert out["corrupt"] == 0 and out["digests_checked"] == 0
    assert "not checked" in (site.root / "out" / "check.txt").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(playbook.read_text().replace("[s2]", "[cdft]").replace("pools-check", "b"))
    result = recover("run", bad, "--site", site.root, "--yes")
    assert result.exit_code == 1 and "unknown: cdft" in result.output


@pytest.mark.parametrize("since", ["yesterday.17:00", "14-Jan.17:00", "14-January-2026.17:00:00"])
def test_history_tool_window_forms(make_site: Callable[..., Site], since: str) -> None:
    """`--param since=yesterday.17:00` (and the day-month spellings of the same moment)
    through the CLI on a site generated for a window at 17:00 the day before: the run
    does what the scenario expects, in the site's zone (UTC)."""
    site = make_site(seed=11, elements=48, window=datetime(2026, 1, 14, 17, tzinfo=UTC))
    assert site.scenario["window"] == "2026-01-14T17:00:00+00:00"
    result = run_playbook(site, since=since)
    assert result.exit_code == 0, result.output
    fix = outputs(site, "fix")
    assert fix["window_since"] == "2026-01-14T17:00:00+00:00"
    expected = site.scenario["expected"]["fix"]
    assert {k: fix[k] for k in expected} == expected
    assert "window since 2026-01-14T17:00:00+00:00" in result.output


def test_unparsable_window_lists_the_forms(site: Site) -> None:
    before = snapshot(site.root)
    result = run_playbook(site, since="22-Jnauary")
    assert result.exit_code == 1, result.output
    assert "'Jnauary' is not a month name" in result.output
    for form in ("yesterday.17:00", "today.08:30", "22-January", "22-Jan-2026.10:00", "ISO 8601"):
        assert form in result.output
    assert "--param since=yesterday.17:00" in result.output
    assert snapshot(site.root)[1] == before[1]
