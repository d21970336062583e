"""Each mode through the CLI: ordinal ranges, re-runs on a half-way catalog,
report naming, preconditions, bad media."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.procedures.archive_volume.conftest import (
    make_site,
    query,
    run_cli,
    snapshot,
    write_playbook,
)

VOL = "VOL0002"


def _run(root: Path, name: str, *steps: dict[str, Any], new: bool = True) -> Any:
    playbook = write_playbook(root.parent / f"{name}.yaml", list(steps))
    return run_cli("run", playbook, "--site", root, "--yes", *(["--new-run"] if new else []))


def _step(id: str, action: str, **args: Any) -> dict[str, Any]:
    return {"id": id, "action": f"archive.{action}", "args": {"volume": VOL, **args}}


def _states(root: Path) -> dict[int, str]:
    return dict(
        query(root, "SELECT ordinal, state FROM object_locations WHERE volume_ref = ?", (VOL,))
    )


def _archived(root: Path) -> dict[str, int]:
    return dict(query(root, "SELECT study_ref, archived_count FROM studies"))


@pytest.mark.parametrize(
    ("ranges", "expected"),
    [
        (None, lambda o, n: True),
        ([], lambda o, n: True),
        ([{"begin": 100}], lambda o, n: o >= 100),
        ([{"begin": 10, "end": 20}], lambda o, n: 10 <= o <= 20),
        (
            [{"begin": 0, "end": 0}, {"begin": 50, "end": 60}, {"begin": 200}],
            lambda o, n: o == 0 or 50 <= o <= 60 or o >= 200,
        ),
        ([{"begin": 5, "end": 30}, {"begin": 20, "end": 40}], lambda o, n: 5 <= o <= 40),
    ],
)
def test_mark_ordinal_ranges(site: tuple[Path, dict[str, Any]], ranges: Any, expected: Any) -> None:
    root, scenario = site
    before = _archived(root)
    owner = dict(
        query(
            root,
            "SELECT l.ordinal, o.study_ref FROM object_locations l JOIN objects"
            " o USING (object_id) WHERE l.volume_ref = ?",
            (VOL,),
        )
    )
    args = {} if ranges is None else {"ranges": ranges}
    result = _run(root, "mark", _step("mark", "mark_affected_locations", **args))
    assert result.exit_code == 0, result.output
    states = _states(root)
    n = scenario["block_count"]
    want = {o: ("R" if expected(o, n) else "A") for o in states}
    assert states == want
    # archived_count drops by the study's marked locations, nothing else changes.
    drop: dict[str, int] = {}
    for ordinal, state in states.items():
        if state == "R":
            drop[owner[ordinal]] = drop.get(owner[ordinal], 0) + 1
    assert _archived(root) == {s: c - drop.get(s, 0) for s, c in before.items()}
    # Running it again changes nothing.
    again = _run(root, "mark2", _step("mark", "mark_affected_locations", **args))
    assert again.exit_code == 0
    assert _states(root) == states and _archived(root) == {
        s: c - drop.get(s, 0) for s, c in before.items()
    }


def test_mark_several_runs_cover_several_ranges(site: tuple[Path, dict[str, Any]]) -> None:
    root, _ = site
    assert (
        _run(
            root, "a", _step("m", "mark_affected_locations", ranges=[{"begin": 10, "end": 19}])
        ).exit_code
        == 0
    )
    assert (
        _run(
            root, "b", _step("m", "mark_affected_locations", ranges=[{"begin": 15, "end": 29}])
        ).exit_code
        == 0
    )
    marked = sorted(o for o, s in _states(root).items() if s == "R")
    assert marked == list(range(10, 30))


def test_mark_refuses_an_online_or_open_or_unknown_volume(
    site: tuple[Path, dict[str, Any]],
) -> None:
    root, scenario = site
    before = snapshot(root)
    result = _run(
        root,
        "x",
        {"id": "m", "action": "archive.mark_affected_locations", "args": {"volume": "VOL0099"}},
    )
    assert result.exit_code == 1 and "VOL0099 is not in the catalog" in result.output
    result = _run(
        root,
        "y",
        {
            "id": "m",
            "action": "archive.mark_affected_locations",
            "args": {"volume": scenario["open_volume"]},
        },
    )
    assert result.exit_code == 1 and "volume closed" in result.output
    assert _run(root, "z", _step("l", "load")).exit_code == 0
    result = _run(root, "w", _step("m", "mark_affected_locations"))
    assert result.exit_code == 1 and "volume offline" in result.output
    assert "archive.unload" in result.output  # the fix
    assert snapshot(root) == {**before, "catalog.sqlite": snapshot(root)["catalog.sqlite"]}
    assert set(_states(root).values()) == {"A"}


def test_attempt_in_batches_and_reruns(tmp_path: Path) -> None:
    """Batches of max_jobs studies; re-running picks up the next batch; post in between."""
    root, scenario = make_site(tmp_path / "site", studies=150, damage_ranges=5)
    affected = sorted(scenario["studies"])
    assert len(affected) > 8
    assert (
        _run(
            root,
            "prep",
            _step("mark", "mark_affected_locations", ranges=scenario["unreadable_ranges"]),
            _step("pre", "pre_recovery_assessment"),
            _step("load", "load", copies_of=VOL),
        ).exit_code
        == 0
    )
    result = _run(root, "one", _step("attempt", "recovery_attempt", max_jobs=3))
    assert result.exit_code == 0, result.output
    assert [r[0] for r in query(root, "SELECT study_ref FROM send_jobs ORDER BY 1")] == affected[:3]
    post = _run(root, "post1", _step("post", "post_recovery_assessment"))
    assert post.exit_code == 0
    assert "3 of " + str(len(affected)) + " study(ies) processed" in post.output
    blanks = [
        line
        for line in (root / "reports" / "post_report.csv").read_text().splitlines()
        if line.startswith(",ST")
    ]
    assert len(blanks) == len(affected) - 3  # not processed yet: blank status
    # clean_up refuses while studies are still in recovery.
    cleanup = _run(root, "early", _step("unload", "unload"), _step("clean", "clean_up"))
    assert cleanup.exit_code == 1 and "still in recovery" in cleanup.output
    assert _run(root, "reload", _step("load", "load")).exit_code == 0
    result = _run(root, "two", _step("attempt", "recovery_attempt", max_jobs=2, batches=2))
    assert result.exit_code == 0
    assert [r[0] for r in query(root, "SELECT study_ref FROM send_jobs ORDER BY 1")] == affected[:7]
    result = _run(root, "rest", _step("attempt", "recovery_attempt", max_jobs=2, batches="all"))
    assert result.exit_code == 0
    assert len(query(root, "SELECT * FROM send_jobs")) == len(affected)
    result = _run(root, "none", _step("attempt", "recovery_attempt", batches="all"))
    assert result.exit_code == 0 and "0 SEND job(s)" in result.output
    # A second post report never overwrites the first.
    assert _run(root, "post2", _step("post", "post_recovery_assessment")).exit_code == 0
    names = sorted(p.name for p in (root / "reports").iterdir() if p.name.startswith("post"))
    assert names == [
        "post_report.csv",
        "post_report.csv.20260102_030405",
        "post_report.txt",
        "post_report.txt.20260102_030405",
    ]
    # clean_up now works, and running it again on the finished catalog changes nothing.
    assert _run(root, "fin", _step("unload", "unload"), _step("clean", "clean_up")).exit_code == 0
    first = query(root, "SELECT * FROM object_locations ORDER BY 1, 2")
    assert _run(root, "fin2", _step("clean", "clean_up")).exit_code == 0
    assert query(root, "SELECT * FROM object_locations ORDER BY 1, 2") == first
    assert len(query(root, "SELECT * FROM archive_destinations")) == sum(
        1 for s in scenario["studies"].values() if s["status"] != "unrecoverable"
    )


def test_attempt_needs_the_carriers_with_copies(site: tuple[Path, dict[str, Any]]) -> None:
    root, scenario = site
    missing = [c["carrier_id"] for c in scenario["expected"]["carriers_with_copies"]]
    assert missing
    assert (
        _run(
            root,
            "prep",
            _step("mark", "mark_affected_locations", ranges=scenario["unreadable_ranges"]),
            {"id": "u", "action": "archive.unload", "args": {"carriers": missing}},
            _step("load", "load"),
        ).exit_code
        == 0
    )
    result = _run(root, "attempt", _step("attempt", "recovery_attempt"))
    assert result.exit_code == 1
    assert "carriers with copies loaded" in result.output and missing[0] in result.output


def test_pre_report_is_never_overwritten(site: tuple[Path, dict[str, Any]]) -> None:
    root, _ = site
    (root / "reports").mkdir()
    (root / "reports" / "pre.txt").write_text("keep me")
    result = _run(root, "pre", _step("pre", "pre_recovery_assessment", report="reports/pre.txt"))
    assert result.exit_code == 0
    assert (root / "reports" / "pre.txt").read_text() == "keep me"
    assert (root / "reports" / "pre.txt.20260102_030405").read_text().startswith("PRE-RECOVERY")


def test_report_path_escaping_the_site_is_refused(site: tuple[Path, dict[str, Any]]) -> None:
    root, _ = site
    before = snapshot(root)
    result = _run(root, "bad", _step("pre", "pre_recovery_assessment", report="../../x.txt"))
    assert result.exit_code == 1
    assert snapshot(root) == before
    assert not (root.parent.parent / "x.txt").exists()


@pytest.mark.parametrize("damage", ["truncate", "magic", "header", "missing"])
def test_bad_volume_file_fails_cleanly_and_changes_nothing(
    site: tuple[Path, dict[str, Any]], damage: str
) -> None:
    root, _ = site
    from tests.procedures.archive_volume.conftest import PLAYBOOK

    media = root / "volumes" / f"{VOL}.vol"
    data = media.read_bytes()
    if damage == "truncate":
        media.write_bytes(data[: len(data) - 100])
    elif damage == "magic":
        media.write_bytes(b"NOTAVOL!" + data[8:])
    elif damage == "header":
        media.write_bytes(data[:20] + b"\x99" + data[21:])
    else:
        media.unlink()
    before = snapshot(root)
    result = run_cli("run", PLAYBOOK, "--site", root, "--yes")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "volume media readable" in result.output
    assert {
        "truncate": "truncated",
        "magic": "not an archive volume",
        "header": "corrupt",
        "missing": "missing",
    }[damage] in result.output
    assert snapshot(root) == before


def test_scan_finds_the_generated_damage(site: tuple[Path, dict[str, Any]]) -> None:
    root, scenario = site
    result = _run(root, "scan", _step("l", "load"), _step("scan", "scan_volume"))
    assert result.exit_code == 0
    assert query(root, "SELECT begin, end FROM volume_scans ORDER BY 1") == [
        (r["begin"], r["end"]) for r in scenario["unreadable_ranges"]
    ]


def test_mark_scanned_needs_a_scan(site: tuple[Path, dict[str, Any]]) -> None:
    root, _ = site
    result = _run(root, "m", _step("m", "mark_affected_locations", ranges="scanned"))
    assert result.exit_code == 1 and "archive.scan_volume" in result.output


def test_corrupt_copy_is_reported_and_kept(site: tuple[Path, dict[str, Any]]) -> None:
    """A copy whose block fails verification is not cached; its object is not deleted."""
    root, scenario = site
    study, obj, src, ordinal = query(
        root,
        "SELECT o.study_ref, o.object_id, l2.volume_ref, l2.ordinal FROM object_locations l"
        " JOIN objects o USING (object_id) JOIN object_locations l2 ON l2.object_id = l.object_id"
        " AND l2.volume_ref <> l.volume_ref WHERE l.volume_ref = ? AND l.ordinal BETWEEN ? AND ?"
        " AND o.object_id NOT IN (SELECT object_id FROM cached_objects) ORDER BY 2 LIMIT 1",
        (VOL, scenario["unreadable_ranges"][0]["begin"], scenario["unreadable_ranges"][0]["end"]),
    )[0]
    path = root / "volumes" / f"{src}.vol"
    data = bytearray(path.read_bytes())
    data[64 + ordinal * 256 + 30] ^= 0xFF  # flip a payload byte: CRC mismatch
    path.write_bytes(bytes(data))
    result = _run(
        root,
        "all",
        _step("mark", "mark_affected_locations", ranges=scenario["unreadable_ranges"]),
        _step("load", "load", copies_of=VOL),
        _step("attempt", "recovery_attempt", batches="all"),
        _step("unload", "unload"),
        _step("clean", "clean_up"),
    )
    assert result.exit_code == 0, result.output
    assert f"{src}: block {ordinal} is corrupt" in result.output
    assert not (root / "cache" / study / str(obj)).exists()
    assert query(
        root, "SELECT state FROM object_locations WHERE object_id = ? ORDER BY 1", (obj,)
    ) == [("A",), ("F",)]
