"""One test per rule of the case-archive note."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .conftest import PLAYBOOK, Site, outputs, recover, run_playbook, run_steps, snapshot

OLD, CURRENT = "Archive_pool_1_2", "Archive_pool_2_2"


def write() -> dict[str, Any]:
    return {"id": "write", "action": "cases.write_tape", "args": {}}


def restore(session: str, case: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": "restore",
        "action": "cases.restore",
        "args": {"session": session, "case": case, **extra},
    }


def load(label: str, step: str = "load") -> dict[str, Any]:
    return {"id": step, "action": "cases.load_tape", "args": {"label": label}}


def store(
    session: str, products: list[str], start: str, end: str | None = None, **extra: Any
) -> dict[str, Any]:
    args: dict[str, Any] = {"session": session, "products": products, "time_from": start, **extra}
    if end:
        args["time_to"] = end
    return {"id": "store", "action": "cases.store", "args": args}


def test_tape_operations_refuse_outside_the_access_window(
    site: Site, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("RECOVER_NOW", "2026-03-10T12:00:00+00:00")
    before = snapshot(site.root)
    for steps in ([write()], [load(OLD)], [restore("hail case", "x")]):
        result = run_steps(site, tmp_path, steps, "--yes", "--new-run")
        assert result.exit_code == 1, result.output
        assert "tape access window" in result.output
        assert "18:00-06:00" in result.output
    assert snapshot(site.root)[0] == before[0]
    # restoring what is still in the cache needs no tape: allowed at noon
    result = run_steps(
        site,
        tmp_path,
        [
            restore(
                "front passage",
                "cached only",
                products=["radar_b"],
                time_from="2026-03-09T12:00:00Z",
            )
        ],
        "--new-run",
    )
    assert result.exit_code == 0, result.output
    assert outputs(site, "restore")["from_cache"] == 2


def test_a_step_refused_outside_the_window_succeeds_when_run_again_inside_it(
    site: Site, monkeypatch: Any
) -> None:
    """The printed fix works. Outside the window the whole run is refused before
    its first step (the store would otherwise be done and the write refused):
    nothing changes, and the run started again inside the window does it all."""
    monkeypatch.setenv("RECOVER_NOW", "2026-03-10T12:00:00+00:00")
    before = snapshot(site.root)
    result = run_playbook(site)
    assert result.exit_code == 1, result.output
    assert "step 'write' would fail: inside the tape access window: it is 12:00 UTC" in (
        result.output
    )
    assert "run again inside the tape access window (18:00-06:00 UTC)" in result.output
    assert snapshot(site.root) == before
    assert not (site.root / ".recover").exists()
    monkeypatch.setenv("RECOVER_NOW", "2026-03-10T19:30:00+00:00")
    result = run_playbook(site)
    assert result.exit_code == 0, result.output
    runs = json.loads(recover("status", "--site", site.root, "--json").output)["runs"]
    assert len(runs) == 1 and runs[0]["state"] == "done"
    assert site.query(
        "SELECT written FROM backups WHERE id = ?", outputs(site, "write")["backup"]
    ) == [("2026-03-10T19:30:00Z",)]
    assert outputs(site, "restore")["from_tape"] > 0


def test_window_over_midnight() -> None:
    from datetime import UTC, datetime

    from runner.procedures.case_archive.tape_window import in_window

    at = lambda h: datetime(2026, 1, 1, h, 30, tzinfo=UTC)  # noqa: E731
    assert in_window("18:00-06:00", at(23)) and in_window("18:00-06:00", at(5))
    assert not in_window("18:00-06:00", at(6)) and not in_window("18:00-06:00", at(12))
    assert in_window("08:00-24:00", at(23)) and not in_window("08:00-24:00", at(7))


def test_write_and_store_refuse_while_the_cache_lock_is_held(site: Site, tmp_path: Path) -> None:
    lock = {"holder": "cases.store (continuous)", "run": "other", "step": "x", "since": "then"}
    (site.root / "cache.lock").write_text(json.dumps(lock))
    before = snapshot(site.root)
    result = run_steps(site, tmp_path, [write()])
    assert result.exit_code == 1
    assert "cache lock is free" in result.output and "continuous" in result.output
    result = run_playbook(site)
    assert result.exit_code == 1 and "cache.lock is held" in result.output
    assert snapshot(site.root) == before
    # the printed fix, followed (no job is running: remove the lock), lets the re-run pass
    assert "remove cache.lock" in result.output
    (site.root / "cache.lock").unlink()
    result = run_playbook(site)
    assert result.exit_code == 0, result.output


def test_store_refused_when_the_cache_would_overflow(site: Site) -> None:
    site.setting("cache_capacity", "5000")
    before = snapshot(site.root)
    result = run_playbook(site)
    assert result.exit_code == 1
    assert "the cache has room" in result.output and "cases.write_tape" in result.output
    assert snapshot(site.root) == before


def test_store_warns_over_the_cache_threshold(site: Site) -> None:
    site.setting("cache_warn_percent", "30")
    result = run_playbook(site)
    assert result.exit_code == 0, result.output
    percent = outputs(site, "store")["cache_percent"]
    assert percent >= 30
    assert f"the cache is {percent:.0f}% full" in result.output


def test_settings_below_the_minimum_sizes_are_refused(site: Site) -> None:
    site.setting("restore_capacity", "5000")
    result = run_playbook(site)
    assert result.exit_code == 1
    assert "restore_capacity 5,000 is below the minimum 6,000" in result.output


def _capacity_for(site: Site, percent: float) -> None:
    used = site.scenario["playbook"]["write"]["tape_used"]
    site.execute(
        "UPDATE tapes SET capacity = ? WHERE label = ?", int(used * 100 / percent), CURRENT
    )


def test_tape_at_80_percent_warns(site: Site) -> None:
    _capacity_for(site, 85)
    result = run_playbook(site)
    assert result.exit_code == 0, result.output
    assert outputs(site, "write")["level"] == "warning"
    assert f"tape {CURRENT} is 85.0% full" in result.output


def _status_warnings(site: Site) -> list[str]:
    runs = json.loads(recover("status", "--site", site.root, "--json").output)["runs"]
    return [
        note["text"]
        for step in runs[0]["steps"]
        for note in step["notes"]
        if note["level"] == "warning"
    ]


def test_tape_at_90_percent_writes_with_an_urgent_banner_kept_until_acknowledged(
    site: Site, tmp_path: Path
) -> None:
    """90% is no gate: the scheduled write goes on; the URGENT banner (tape, percentage,
    what to do) is shown, in the report, and in `recover status` until acknowledged."""
    _capacity_for(site, 95)
    result = recover("run", PLAYBOOK, "--site", site.root, "--yes")
    assert result.exit_code == 0, result.output
    out = outputs(site, "write")
    assert out["level"] == "urgent" and out["files"] == 17
    assert site.query("SELECT count(*) FROM files WHERE location = 'cache'") == [(0,)]
    banner = f"URGENT: tape {CURRENT} is 95.0% full: replace it very soon"
    assert banner in result.output and "cases.new_tape" in result.output
    assert "--confirm tape_full_ack" in result.output
    assert banner in (site.root / out["report"]).read_text()
    assert any(banner in w for w in _status_warnings(site))
    assert f"warning: {banner}" in recover("status", "--site", site.root).output
    # a later run without the key shows it again; with the key it is acknowledged
    result = run_steps(site, tmp_path, [load(CURRENT)], "--new-run")
    assert result.exit_code == 0 and banner in result.output
    assert any(banner in w for w in _status_warnings(site))
    result = run_steps(site, tmp_path, [load(CURRENT)], "--new-run", "--confirm", "tape_full_ack")
    assert result.exit_code == 0 and "acknowledged (tape_full_ack)" in result.output
    assert not _status_warnings(site)
    result = run_steps(site, tmp_path, [load(CURRENT)], "--new-run")
    assert result.exit_code == 0 and "URGENT" not in result.output
    assert not _status_warnings(site)


def test_the_urgent_banner_is_resolved_by_a_new_tape(site: Site, tmp_path: Path) -> None:
    _capacity_for(site, 95)
    assert run_playbook(site).exit_code == 0
    new = {"id": "new", "action": "cases.new_tape", "args": {}}
    result = run_steps(site, tmp_path, [new], "--new-run")
    assert result.exit_code == 0, result.output
    assert "banner is resolved" in result.output
    result = run_steps(site, tmp_path, [load("Archive_pool_3_2")], "--new-run")
    assert result.exit_code == 0 and "URGENT" not in result.output


def test_tape_write_that_does_not_fit_is_refused(site: Site, tmp_path: Path) -> None:
    _capacity_for(site, 101)
    tape_before = (site.root / "tapes" / f"{CURRENT}.tape").read_bytes()
    result = run_playbook(site)
    assert result.exit_code == 1 and "does not fit" in result.output
    assert (site.root / "tapes" / f"{CURRENT}.tape").read_bytes() == tape_before


def test_restore_from_an_old_tape_needs_that_tape_loaded(site: Site, tmp_path: Path) -> None:
    before = snapshot(site.root)
    result = run_steps(site, tmp_path, [restore("storm 0309", "storm")])
    assert result.exit_code == 1
    assert f"load tape {OLD}" in result.output
    assert f"put the current tape {CURRENT} back afterwards" in result.output
    assert snapshot(site.root) == before
    result = run_steps(site, tmp_path, [load(OLD), restore("storm 0309", "storm")], "--new-run")
    assert result.exit_code == 0, result.output
    done = outputs(site, "restore")
    assert done["files"] == site.scenario["sessions"]["storm 0309"]["files"]
    assert done["tape"] == OLD
    # with the old tape in the drive, tape writes refuse until the current one is back
    result = run_steps(site, tmp_path, [write()], "--new-run")
    assert result.exit_code == 1 and f"label {CURRENT}" in result.output
    result = run_steps(site, tmp_path, [load(CURRENT), write()], "--new-run")
    assert result.exit_code == 0, result.output


def test_reinit_of_an_old_tape_removes_its_sessions_as_data_loss(
    site: Site, tmp_path: Path
) -> None:
    reinit = {"id": "reinit", "action": "cases.reinit_tape", "args": {"label": OLD}}
    files = site.scenario["sessions"]["storm 0309"]["files"]
    # destructive: no --yes, no run
    before = snapshot(site.root)
    result = run_steps(site, tmp_path, [load(OLD), reinit])
    assert result.exit_code == 3
    # no loss budget: refused, nothing changed
    result = run_steps(site, tmp_path, [load(OLD), reinit], "--yes", "--new-run")
    assert result.exit_code == 3 and f"{files} files" in result.output
    assert (site.root / "tapes" / f"{OLD}.tape").read_bytes() != b""
    assert site.query("SELECT count(*) FROM store_sessions WHERE name = 'storm 0309'") == [(1,)]
    assert snapshot(site.root)[0] == before[0]
    result = run_steps(
        site, tmp_path, [load(OLD), reinit], "--yes", "--new-run", allow_loss={"files": files}
    )
    assert result.exit_code == 0, result.output
    assert site.query("SELECT count(*) FROM store_sessions WHERE name = 'storm 0309'") == [(0,)]
    assert site.query(
        "SELECT count(*) FROM files f JOIN backups b ON b.id = f.backup_id WHERE b.tape = ?", OLD
    ) == [(0,)]
    assert site.query("SELECT state, write_protected FROM tapes WHERE label = ?", OLD) == [
        ("blank", 0)
    ]
    assert outputs(site, "reinit")["sessions_removed"] == ["storm 0309"]
    # the current tape cannot be re-initialised
    reinit_current = {**reinit, "args": {"label": CURRENT}}
    result = run_steps(
        site,
        tmp_path,
        [load(CURRENT), reinit_current],
        "--yes",
        "--new-run",
        allow_loss={"files": 1000},
    )
    assert result.exit_code == 1 and "the tape is an old tape" in result.output


def test_a_case_in_use_cannot_be_deleted(site: Site, tmp_path: Path) -> None:
    name = site.scenario["case_in_use"]
    delete = {"id": "delete", "action": "cases.delete_case", "args": {"case": name}}
    before = snapshot(site.root)
    result = run_steps(site, tmp_path, [delete], "--yes")
    assert result.exit_code == 1 and "being displayed" in result.output
    assert snapshot(site.root) == before
    site.execute("UPDATE cases SET in_use = 0")
    result = run_steps(site, tmp_path, [delete], "--yes", "--new-run")
    assert result.exit_code == 0, result.output
    assert not [p for p in (site.root / "restore").rglob("*") if p.is_file()]
    assert site.query("SELECT count(*) FROM cases") == [(0,)]


def test_restore_refused_without_room_on_the_restore_disk(site: Site, tmp_path: Path) -> None:
    site.setting("restore_capacity", "7000")
    before = snapshot(site.root)
    result = run_steps(site, tmp_path, [restore("hail case", "hail")])
    assert result.exit_code == 1
    assert "the restore disk has room" in result.output and "free" in result.output
    assert snapshot(site.root) == before


def test_overlapping_sessions_store_a_file_once(site: Site) -> None:
    assert run_playbook(site).exit_code == 0
    assert outputs(site, "store")["files_shared"] == 2
    shared = site.query(
        """SELECT f.relpath, count(*) FROM session_files sf JOIN files f ON f.id = sf.file_id
           GROUP BY f.id HAVING count(*) > 1 ORDER BY 1"""
    )
    # radar_a 10, 11 (hail case + squall line) and satellite 9-11 (hail case + front passage)
    assert len(shared) == 5
    assert (
        site.query("SELECT count(*), count(DISTINCT relpath) FROM files")[0]
        == (site.query("SELECT count(*), count(*) FROM files")[0])
    )


def test_restore_mixes_cache_and_tape_and_reports_the_corrupt_record(
    site: Site, tmp_path: Path
) -> None:
    result = run_steps(site, tmp_path, [restore("front passage", "front")])
    assert result.exit_code == 0, result.output
    done = outputs(site, "restore")
    assert (done["from_cache"], done["from_tape"]) == (7, 3)
    result = run_steps(site, tmp_path, [restore("hail case", "hail")], "--new-run")
    assert result.exit_code == 0, result.output
    done = outputs(site, "restore")
    bad = site.scenario["corrupt"]["file"]
    assert done["corrupt"] == 1 and done["files"] == 11
    assert "1 corrupt were not restored" in result.output
    assert bad in (site.root / done["report"]).read_text()
    assert not (site.root / "restore" / "hail" / bad).exists()


def test_restore_of_a_product_subset_and_time_range(site: Site, tmp_path: Path) -> None:
    step = restore(
        "hail case",
        "Hail radar only",
        products=["radar_a"],
        time_from="2026-03-09T07:00:00Z",
        time_to="2026-03-09T09:00:00Z",
    )
    result = run_steps(site, tmp_path, [step])
    assert result.exit_code == 0, result.output
    assert outputs(site, "restore")["files"] == 3
    assert os.readlink(site.root / "restore" / "Hail_radar_only" / "maps") == "../../common/maps"


def test_continuous_store_adds_new_files_to_the_same_session(site: Site, tmp_path: Path) -> None:
    step = store("watch", ["lightning"], "2026-03-09T20:00:00Z", mode="continuous")
    result = run_steps(site, tmp_path, [step])
    assert result.exit_code == 0, result.output
    assert outputs(site, "store")["files_copied"] == 4  # hours 20-23
    # new data arrives on the ingest disk
    rel = "lightning/20260310/lightning_0000.dat"
    (site.root / "ingest" / rel).parent.mkdir(parents=True)
    (site.root / "ingest" / rel).write_bytes(b"new")
    site.execute(
        "INSERT INTO products (product, time, relpath, size, digest) VALUES "
        "('lightning', '2026-03-10T00:00:00Z', ?, 3, ?)",
        rel,
        __import__("hashlib").sha256(b"new").hexdigest(),
    )
    result = run_steps(site, tmp_path, [step], "--new-run")
    assert result.exit_code == 0, result.output
    assert outputs(site, "store")["files_copied"] == 1
    assert outputs(site, "store")["session_files"] == 5
    assert site.query("SELECT count(*) FROM store_sessions WHERE name = 'watch'") == [(1,)]


def test_one_time_session_is_not_extended(site: Site, tmp_path: Path) -> None:
    step = store("hail case", ["radar_a"], "2026-03-09T06:00:00Z", "2026-03-09T11:00:00Z")
    result = run_steps(site, tmp_path, [step])
    assert result.exit_code == 1 and "choose a new session name" in result.output


def test_new_tape_becomes_current_and_the_full_one_old(site: Site, tmp_path: Path) -> None:
    new = {"id": "new", "action": "cases.new_tape", "args": {}}
    result = run_steps(site, tmp_path, [new, write()])
    assert result.exit_code == 0, result.output
    assert site.query("SELECT label, state, write_protected FROM tapes ORDER BY label") == [
        (OLD, "old", 1),
        (CURRENT, "old", 1),
        ("Archive_pool_3_2", "current", 0),
    ]
    assert outputs(site, "write")["tape"] == "Archive_pool_3_2"
    bad = {"id": "new", "action": "cases.new_tape", "args": {"label": "Other_pool_9_1"}}
    result = run_steps(site, tmp_path, [bad], "--new-run")
    assert result.exit_code == 1 and "<pool>_<n>_2" in result.output


def test_common_data_links_that_would_leave_the_site_are_refused(
    site: Site, tmp_path: Path
) -> None:
    site.setting("common_dirs", json.dumps(["common/maps", "escape"]))
    (site.root / "escape").symlink_to(tmp_path)
    result = run_playbook(site)
    assert result.exit_code == 1, result.output
    assert "the common data links stay inside the site" in result.output
    assert "resolves outside the site" in result.output
    assert not (site.root / "restore" / "Squall_line_review").exists()


def test_emptying_the_cache_and_deleting_a_case_remove_the_directories_left_empty(
    site: Site, tmp_path: Path
) -> None:
    result = run_playbook(site)
    assert result.exit_code == 0, result.output
    cache = site.root / "cache"
    assert cache.is_dir() and list(cache.iterdir()) == []
    case = site.root / "restore" / "Squall_line_review"
    assert (case / "maps").is_symlink()
    delete = {"id": "delete", "action": "cases.delete_case", "args": {"case": "Squall line review"}}
    result = run_steps(site, tmp_path, [delete], "--yes", "--new-run")
    assert result.exit_code == 0, result.output
    assert not case.exists() and not case.is_symlink()
    # the links went, never what they point to
    assert (site.root / "common" / "maps" / "README").exists()
    assert (site.root / "restore").is_dir()
