"""End to end through the CLI: every damage kind, against scenario.json's figures."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.procedures.keyed_file.conftest import PLAYBOOK, SiteMaker, digest, recover, steps
from tests.procedures.keyed_file.readback import keys_match_records, read_pair

CASES = {
    "none": (),
    "eof": ("eof",),
    "dangling": ("dangling",),
    "split": ("split",),
    "missing": ("missing",),
    "split+dangling": ("split", "dangling"),
    "all": ("eof", "dangling", "split", "missing"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_damage_kind_end_to_end(make_site: SiteMaker, case: str) -> None:
    site, scenario = make_site(records=3_000, keys=3, damage=CASES[case], seed=11)
    want = scenario["expected"]
    before = digest(site)

    planned = recover("plan", PLAYBOOK, "--site", site)
    assert planned.exit_code == 0, planned.output
    assert digest(site) == before, "plan changed the site"
    if want["reload_needed"]:
        assert "reload: keyed.reload" in planned.output and "would run" in planned.output

    result = recover("run", PLAYBOOK, "--site", site, "--yes")
    assert result.exit_code == 0, result.output
    ran = steps(site)
    verify, repair = ran["verify"]["outputs"], ran["repair"]["outputs"]
    assert verify["crashed"] == want["crashed"]
    assert verify["valid_records"] == want["valid_records"]
    assert repair["fs_eof"] == want["fs_eof"]
    assert repair["fs_eof_reset"] == want["fs_eof_reset"]
    assert repair["key_eof"] == want["key_eof"]
    assert repair["key_eof_reset"] == want["key_eof_reset"]
    assert repair["key_eof_after"] == want["key_eof_after"]
    assert repair["keys_before"] == [k["values_before"] for k in want["keys"]]
    assert repair["dangling_per_key"] == [k["dangling"] for k in want["keys"]]
    assert repair["key_counts"] == [k["values_after"] for k in want["keys"]]
    assert repair["missing_keys"] == want["missing_keys"]
    assert repair["reload_needed"] == want["reload_needed"]
    assert ran["reload"]["state"] == ("done" if want["reload_needed"] else "skipped")
    assert ran["count"]["outputs"]["count"] == want["valid_records"]

    files = site / "files"
    pair = read_pair(files / "customers.dat", files / "customers.key")
    assert not pair.crashed and pair.fs_eof == pair.keyed_eof
    assert keys_match_records(pair)
    if want["reload_needed"]:
        assert pair.keyed_eof == want["after_reload"]["records"]
        assert (files / "customers.dat.bak").exists() and (files / "customers.key.bak").exists()
        reload = ran["reload"]["outputs"]
        assert reload["deleted_dropped"] == want["after_reload"]["deleted_dropped"]
        assert reload["key_values"] == [want["valid_records"]] * 3
    else:
        assert pair.keyed_eof == want["keyed_eof"]
        assert not (files / "customers.dat.bak").exists()

    report = (site / "reports" / "keyed-repair.txt").read_text()
    if want["fs_eof_reset"]:
        assert (
            f"Data file EOF damaged: FS EOF {want['fs_eof']:,} is behind the keyed EOF "
            f"{want['keyed_eof']:,}; reset to keyed EOF {want['keyed_eof']:,}."
        ) in report
    if want["key_eof_reset"]:
        assert f"reset to {want['key_eof_after']:,}." in report
    assert ("WARNING: the file must be reloaded" in report) == want["reload_needed"]


def test_second_run_finds_nothing_and_changes_no_data(make_site: SiteMaker) -> None:
    """Repair is idempotent: once repaired (and reloaded), a new run finds no damage."""
    site, _scenario = make_site(records=2_000, damage=("eof", "dangling", "split", "missing"))
    assert recover("run", PLAYBOOK, "--site", site, "--yes").exit_code == 0
    files = digest(site, under="files")
    again = recover("run", PLAYBOOK, "--site", site, "--yes")  # finished run: nothing to do
    assert again.exit_code == 0, again.output
    assert digest(site, under="files") == files
    rerun = recover("run", PLAYBOOK, "--site", site, "--yes", "--new-run")
    assert rerun.exit_code == 0, rerun.output
    ran = steps(site)
    assert ran["verify"]["outputs"]["damaged"] is False
    assert ran["repair"]["outputs"]["dangling_deleted"] == 0
    assert ran["repair"]["outputs"]["reload_needed"] is False
    assert ran["reload"]["state"] == "skipped"
    # same clock, same user: the repaired pair is byte-identical
    assert digest(site, under="files") == files


def test_run_without_yes_is_refused_and_changes_nothing(make_site: SiteMaker) -> None:
    site, _ = make_site(records=500, damage=("eof",))
    before = digest(site)
    result = recover("run", PLAYBOOK, "--site", site)
    assert result.exit_code == 3, result.output
    assert digest(site) == before


def _playbook(tmp_path: Path, steps_yaml: str) -> Path:
    path = tmp_path / "pb.yaml"
    path.write_text("version: 1\nname: keyed-test\nsite: {root: site}\nsteps:\n" + steps_yaml)
    return path


ARGS = "{data_file: files/customers.dat, key_file: files/customers.key"


def test_crashed_file_refused_without_no_check(make_site: SiteMaker, tmp_path: Path) -> None:
    site, _ = make_site(records=500, damage=("dangling",))
    before = digest(site)
    pb = _playbook(tmp_path, f"  - {{id: v, action: keyed.verify, args: {ARGS}}}}}\n")
    result = recover("plan", pb, "--site", site)
    assert result.exit_code == 1
    assert "marked crashed" in result.output and "no_check" in result.output
    assert "Traceback" not in result.output
    run = recover("run", pb, "--site", site, "--yes")
    assert run.exit_code == 1 and "marked crashed" in run.output
    assert digest(site) == before


def test_reload_refuses_a_crashed_file(make_site: SiteMaker, tmp_path: Path) -> None:
    site, _ = make_site(records=500, damage=("missing",))
    before = digest(site)
    pb = _playbook(tmp_path, f"  - {{id: r, action: keyed.reload, args: {ARGS}}}}}\n")
    result = recover("run", pb, "--site", site, "--yes")
    assert result.exit_code == 1 and "keyed.repair" in result.output
    assert digest(site) == before


def test_count_after_repair_shows_missing_keys(make_site: SiteMaker, tmp_path: Path) -> None:
    """Without the reload, reading in key order misses the records whose keys are gone."""
    site, scenario = make_site(records=2_000, keys=2, damage=("missing",), seed=5)
    want = scenario["expected"]
    pb = _playbook(
        tmp_path,
        (
            f"  - {{id: repair, action: keyed.repair, args: {ARGS}}}}}\n"
            f"  - {{id: count1, action: keyed.count, args: {ARGS}, key: 1}}}}\n"
            f"  - {{id: count2, action: keyed.count, args: {ARGS}, key: 2}}}}\n"
        ),
    )
    result = recover("run", pb, "--site", site, "--yes")
    assert result.exit_code == 0, result.output
    ran = steps(site)
    assert ran["count1"]["outputs"]["count"] == want["keys"][0]["values_after"]
    assert ran["count2"]["outputs"]["count"] == want["keys"][1]["values_after"]
    assert ran["count2"]["outputs"]["count"] < want["valid_records"]
    assert any("differ" in n["text"] or "finds" in n["text"] for n in ran["count2"]["notes"])


def test_validate_flags_repair_after_reload(tmp_path: Path) -> None:
    pb = _playbook(
        tmp_path,
        (
            f"  - {{id: reload, action: keyed.reload, args: {ARGS}}}}}\n"
            f"  - {{id: repair, action: keyed.repair, args: {ARGS}}}}}\n"
            "  - {id: same, action: keyed.verify, args: {data_file: a.dat, key_file: a.dat}}\n"
        ),
    )
    result = recover("validate", pb)
    assert result.exit_code == 1
    assert "keyed.repair comes after keyed.reload" in result.output
    assert "name the same file" in result.output


def test_shipped_playbook_validates() -> None:
    result = recover("validate", PLAYBOOK)
    assert result.exit_code == 0, result.output


def test_hostile_paths_are_refused(make_site: SiteMaker, tmp_path: Path) -> None:
    site, _ = make_site(records=100)
    for bad in ("../outside.dat", "/etc/passwd"):
        pb = _playbook(
            tmp_path,
            f"  - {{id: v, action: keyed.verify, args: {{data_file: "
            f"'{bad}', key_file: files/customers.key}}}}\n",
        )
        result = recover("validate", pb)
        assert result.exit_code == 1, result.output
        # through a param, the path is only known at plan time
        planned = recover("plan", PLAYBOOK, "--site", site, "--param", f"data_file={bad}")
        assert planned.exit_code == 1, planned.output
        assert "Traceback" not in planned.output
    outside = tmp_path / "outside.dat"
    outside.write_bytes(b"secret")
    (site / "files" / "link.dat").symlink_to(outside)
    planned = recover("plan", PLAYBOOK, "--site", site, "--param", "data_file=files/link.dat")
    assert planned.exit_code == 1 and "outside the site" in planned.output
