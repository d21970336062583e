"""The shipped playbook end to end through the CLI, checked against scenario.json."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

from tests.procedures.archive_volume.conftest import (
    PLAYBOOK,
    csv_rows,
    make_site,
    query,
    run_cli,
    run_playbook,
    snapshot,
)


def test_validate_shipped_playbook() -> None:
    result = run_cli("validate", PLAYBOOK)
    assert result.exit_code == 0, result.output


def test_full_recovery_matches_scenario(site: tuple[Path, dict[str, Any]]) -> None:
    root, scenario = site
    vol, exp = scenario["damaged_volume"], scenario["expected"]
    assert exp["recoverable"] and exp["unrecoverable"] and exp["partially_recovered_studies"]
    on_volume_before = dict(
        query(
            root,
            "SELECT o.study_ref, s.archived_count FROM object_locations l JOIN objects o USING"
            " (object_id) JOIN studies s USING (study_ref) WHERE l.volume_ref = ? GROUP BY 1",
            (vol,),
        )
    )
    intact_before = {
        ref: rows
        for ref, rows in _study_rows(root).items()
        if ref in on_volume_before and ref not in scenario["studies"]
    }
    assert len(intact_before) == exp["studies_intact_on_volume"] > 0

    result = run_playbook(root)
    assert result.exit_code == 0, result.output

    # Mark found exactly the scenario's unreadable ranges (via scan_volume).
    assert query(
        root, "SELECT begin, end FROM volume_scans WHERE volume_ref = ? ORDER BY 1", (vol,)
    ) == [(r["begin"], r["end"]) for r in scenario["unreadable_ranges"]]
    # Every affected location is finished or deleted; the rest stay good.
    states = dict(
        query(
            root,
            "SELECT state, count(*) FROM object_locations WHERE volume_ref = ? GROUP BY state",
            (vol,),
        )
    )
    assert states.get("F", 0) == exp["recoverable"]
    assert "R" not in states and "S" not in states
    assert states.get("A", 0) == scenario["locations_on_volume"] - exp["objects_affected"]
    # Unrecoverable objects were deleted; the loss was reported.
    assert "Data loss: " + str(exp["unrecoverable"]) + " objects" in result.output
    gone = query(root, "SELECT count(*) FROM studies")[0][0]
    assert gone == 80 - exp["studies_deleted_at_clean_up"]
    # Recovered studies: queued for re-archive to the open volume, unprotected.
    recovered = {r for r, s in scenario["studies"].items() if s["status"] != "unrecoverable"}
    queued = query(
        root, "SELECT study_ref, volume_ref, from_volume, queued_at FROM archive_destinations"
    )
    assert {q[0] for q in queued} == recovered
    assert {(q[1], q[2], q[3]) for q in queued} == {
        (scenario["open_volume"], vol, "2026-01-02T03:04:05+00:00")
    }
    assert query(root, "SELECT count(*) FROM cache_locations WHERE protected = 1") == [(0,)]
    # One SEND job per affected study, with the expected copy counts.
    jobs = {
        r[0]: r[1:]
        for r in query(root, "SELECT study_ref, objects_affected, objects_copied FROM send_jobs")
    }
    assert jobs == {r: (s["objects"], s["recoverable"]) for r, s in scenario["studies"].items()}
    # The cache really holds verified bytes of every recovered object.
    for study_ref, object_id, checksum in query(
        root,
        "SELECT o.study_ref, o.object_id, o.checksum FROM object_locations l JOIN objects o"
        " USING (object_id) WHERE l.volume_ref = ? AND l.state = 'F'",
        (vol,),
    ):
        data = (root / "cache" / study_ref / str(object_id)).read_bytes()
        assert f"{zlib.crc32(data):08x}" == checksum
    # The volume keeps its good locations, so it stays in the catalog.
    assert query(root, "SELECT count(*) FROM volumes WHERE volume_ref = ?", (vol,)) == [(1,)]
    # Fully intact studies were never touched.
    after = _study_rows(root)
    for ref, rows in intact_before.items():
        assert after[ref] == rows, ref
    # The post report's statuses and totals agree with the scenario.
    rows = list(csv_rows(root / "reports" / "post_report.csv"))
    assert rows[0] == [
        "status",
        "study_ref",
        "objects",
        "recoverable",
        "recovered",
        "study_uid",
        "accession_number",
        "patient_name",
        "patient_id",
        "modality",
        "station_name",
    ]
    body = {r[1]: r for r in rows[1:] if len(r) == 11}
    assert {r: (b[0], int(b[2]), int(b[3]), int(b[4])) for r, b in body.items()} == {
        r: (s["status"], s["objects"], s["recoverable"], s["recoverable"])
        for r, s in scenario["studies"].items()
    }
    assert rows[-1] == [
        "",
        str(exp["studies_affected"]),
        str(exp["fully_recovered_studies"]),
        str(exp["partially_recovered_studies"]),
        str(exp["unrecoverable_studies"]),
        "0",
    ]


def test_pre_report_lists_studies_locations_and_carriers(
    site: tuple[Path, dict[str, Any]],
) -> None:
    root, scenario = site
    assert run_playbook(root).exit_code == 0
    rows = list(csv_rows(root / "reports" / "pre_report.csv"))
    assert rows[0] == [
        "study_ref",
        "study_uid",
        "accession_number",
        "patient_name",
        "patient_id",
        "modality",
        "station_name",
        "objects",
        "in_recovery",
        "recoverable",
        "unrecoverable",
        "locations",
    ]
    # Issue 13: "objects" is the whole study, the in-recovery figures have their own
    # columns, and every object of the study is listed with its location.
    studies = {r[0]: r for r in rows[1:] if r and r[0].startswith("ST")}
    assert {r: tuple(int(v) for v in s[7:11]) for r, s in studies.items()} == {
        r: (s["study_objects"], s["objects"], s["recoverable"], s["unrecoverable"])
        for r, s in scenario["studies"].items()
    }
    assert any(s["study_objects"] > s["objects"] for s in scenario["studies"].values())
    for ref, row in studies.items():
        listed = row[11].split("; ")
        assert len(listed) == scenario["studies"][ref]["study_objects"], ref
        assert sum(":R " in part for part in listed) == scenario["studies"][ref]["objects"]
    exp = scenario["expected"]
    total = next(r for r in rows if r and r[0] == "TOTAL")
    recoverable_studies = exp["fully_recovered_studies"] + exp["partially_recovered_studies"]
    assert total[7:] == [
        str(exp["objects_of_affected_studies"]),
        str(exp["objects_affected"]),
        str(exp["recoverable"]),
        str(exp["unrecoverable"]),
        f"{exp['studies_affected']} studies, {recoverable_studies} recoverable",
    ]
    carriers = rows[rows.index(["carrier_to_load", "loaded", "reason"]) + 1 :]
    assert [c[0] for c in carriers] == [scenario["damaged_carrier"]] + [
        c["carrier_id"] for c in exp["carriers_with_copies"]
    ]
    text = (root / "reports" / "pre_report.txt").read_text()
    for study_ref in scenario["studies"]:
        assert f"STUDY {study_ref}" in text
    assert "Carriers to put online" in text
    assert f"  recoverable:         {recoverable_studies} (at least one object" in text


def test_whole_volume_lost_removes_the_volume(tmp_path: Path) -> None:
    root, scenario = make_site(tmp_path / "s", damaged_fraction=1.0, damage_ranges=1)
    assert scenario["expected"]["volume_removed_after_clean_up"]
    result = run_playbook(root)
    assert result.exit_code == 0, result.output
    vol = scenario["damaged_volume"]
    assert query(root, "SELECT count(*) FROM volumes WHERE volume_ref = ?", (vol,)) == [(0,)]
    # Issue 13: clean_up deletes the volume's F locations before removing it.
    assert query(root, "SELECT count(*) FROM object_locations WHERE volume_ref = ?", (vol,)) == [
        (0,)
    ]
    assert "removed from the catalog" in result.output


def test_plan_changes_nothing_and_predicts_the_loss(site: tuple[Path, dict[str, Any]]) -> None:
    root, scenario = site
    before = snapshot(root)
    result = run_cli("plan", PLAYBOOK, "--site", root)
    assert result.exit_code == 0, result.output
    assert f"Data loss: {scenario['expected']['unrecoverable']} objects" in result.output
    assert snapshot(root) == before
    assert not (root / ".recover").exists() or not (root / ".recover" / "journal.sqlite").exists()


def test_run_without_yes_is_refused(site: tuple[Path, dict[str, Any]]) -> None:
    root, _ = site
    before = snapshot(root)
    result = run_cli("run", PLAYBOOK, "--site", root)
    assert result.exit_code == 3, result.output
    assert snapshot(root) == before


def test_loss_beyond_budget_is_refused(site: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    root, scenario = site
    text = PLAYBOOK.read_text().replace("allow_loss: {objects: 500}", "allow_loss: {objects: 1}")
    strict = tmp_path / "strict.yaml"
    strict.write_text(text.replace("../sites/archive", "."))
    result = run_cli("run", strict, "--site", root, "--yes")
    assert result.exit_code == 3, result.output
    vol = scenario["damaged_volume"]
    # clean_up was rolled back: nothing deleted, everything still sent (S).
    assert query(
        root, "SELECT count(*) FROM object_locations WHERE volume_ref = ? AND state = 'S'", (vol,)
    ) == [(scenario["expected"]["objects_affected"],)]


def _study_rows(root: Path) -> dict[str, Any]:
    """Everything the catalog holds about each study, to compare before/after."""
    out: dict[str, Any] = {}
    for row in query(root, "SELECT * FROM studies"):
        out[row[0]] = {"study": row}
    for study_ref, *rest in query(
        root,
        "SELECT o.study_ref, o.object_id, l.volume_ref, l.ordinal, l.state FROM objects o"
        " JOIN object_locations l USING (object_id) ORDER BY 1, 2, 3",
    ):
        out[study_ref].setdefault("locations", []).append(tuple(rest))
    for row in query(root, "SELECT * FROM cache_locations ORDER BY 1"):
        out[row[0]]["cache"] = row
    return out
