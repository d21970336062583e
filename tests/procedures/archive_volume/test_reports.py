"""The assessment reports: the preformatted `lines` the shipped templates print
agree with the `studies` records a site's own templates lay out, in any chunking."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from runner.procedures.archive_volume.actions import assess
from tests.procedures.archive_volume.conftest import csv_rows, make_site, run_cli, write_playbook

VOL = "VOL0002"


def _steps(*actions: str) -> list[dict[str, Any]]:
    return [
        {"id": a.split("_")[0], "action": f"archive.{a}", "args": {"volume": VOL}} for a in actions
    ]


@pytest.fixture(scope="module")
def processed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site half-way through recovery: marked, some studies sent, none cleaned up."""
    root, scenario = make_site(tmp_path_factory.mktemp("reports") / "site", studies=60)
    steps = [
        {
            "id": "mark",
            "action": "archive.mark_affected_locations",
            "args": {"volume": VOL, "ranges": scenario["unreadable_ranges"]},
        },
        *_steps("load"),
        {
            "id": "attempt",
            "action": "archive.recovery_attempt",
            "args": {"volume": VOL, "max_jobs": 4},
        },
        *_steps("unload"),
    ]
    playbook = write_playbook(root.parent / "prep.yaml", steps)
    result = run_cli("run", playbook, "--site", root, "--yes")
    assert result.exit_code == 0, result.output
    return root


def _assess(base: Path, name: str, templates: dict[str, str] | None = None) -> Path:
    root = base.parent / name
    shutil.copytree(base, root)
    shutil.rmtree(root / ".recover")
    for file, text in (templates or {}).items():
        (root / "templates" / "archive_volume").mkdir(parents=True, exist_ok=True)
        (root / "templates" / "archive_volume" / file).write_text(text)
    steps = _steps("pre_recovery_assessment", "post_recovery_assessment")
    playbook = write_playbook(root.parent / f"{name}.yaml", steps)
    result = run_cli("run", playbook, "--site", root, "--yes")
    assert result.exit_code == 0, result.output
    return root / "reports"


def test_small_chunks_write_the_same_bytes(
    processed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = _assess(processed, "shipped")
    monkeypatch.setattr(assess, "CHUNK_ROWS", 1)
    monkeypatch.setattr(assess, "CHUNK_CHARS", 1)
    tiny = _assess(processed, "tiny")
    for name in ("pre_report.txt", "pre_report.csv", "post_report.txt", "post_report.csv"):
        assert (tiny / name).read_bytes() == (shipped / name).read_bytes(), name
    text = (shipped / "pre_report.txt").read_text()
    assert "\n\nSTUDY " in text and "copies: " in text
    statuses = {row[0] for row in csv_rows(shipped / "post_report.csv") if row}
    assert {"", "fully recovered"} <= statuses  # some sent, some still waiting


POST_FIELDS = """{{ columns|csvrow }}
{% for s in studies %}
{{ [s.status, s.study_ref, s.objects, s.recoverable, s.recovered, s.study_uid,
    s.accession_number, s.patient_name, s.patient_id, s.modality, s.station_name]|csvrow }}
{% endfor %}
"""
PRE_FIELDS = """{% for s in studies %}
{{ [s.study_ref, s.study_uid, s.accession_number, s.patient_name, s.patient_id, s.modality,
    s.station_name, s.objects, s.in_recovery, s.recoverable, s.unrecoverable]|csvrow }}
{% for l in s.locations %}
{{ ["", l.object_id, l.ordinal, l.state, "yes" if l.in_recovery else "no",
    "yes" if l.recoverable else "no", l.copies]|csvrow }}
{% endfor %}
{% endfor %}
"""


def test_site_templates_lay_out_the_same_rows_from_fields(processed: Path) -> None:
    shipped = _assess(processed, "shipped2")
    own = _assess(
        processed,
        "own",
        {"post_report.csv.j2": POST_FIELDS, "pre_report.csv.j2": PRE_FIELDS},
    )
    ours = list(csv_rows(own / "post_report.csv"))
    theirs = list(csv_rows(shipped / "post_report.csv"))
    assert ours == theirs[: len(ours)] and theirs[len(ours)] == []
    # pre: each study's fields and locations agree with the shipped `locations` column.
    studies = [r for r in csv_rows(shipped / "pre_report.csv") if r and r[0].startswith("ST")]
    rebuilt: list[list[str]] = []
    for row in csv_rows(own / "pre_report.csv"):
        if row[0]:
            rebuilt.append([*row, ""])
            continue
        _, object_id, ordinal, state, in_recovery, good, copies = row
        where = f"{VOL}:{ordinal}:{state}" if ordinal else "-"
        part = f"{object_id} {where} copies {copies.replace(' ', '+') or 'none'}"
        last = rebuilt[-1]
        last[11] = f"{last[11]}; {part}" if last[11] else part
        assert (in_recovery == "yes") == (state in ("R", "S", "F"))
        assert (good == "yes") == (
            in_recovery == "yes" and ("cache" in copies.split() or ":A" in copies)
        )
    assert rebuilt == studies and studies
