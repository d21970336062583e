"""Steps that fail or die in awkward places still leave a journaled, unlocked site.

Runs the real `recover` in a subprocess with the toy procedure loaded, since
RECOVER_EXTRA_PROCEDURES is read once per process.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.helpers import NOW_SUFFIX, process_env, run_process, steps_of
from tests.toyproc import build_site

PLAYBOOK = """\
version: 1
name: toy
site: {{root: .}}
safety: {{allow_loss: {{items: 100}}}}
steps:
  - id: offline
    action: toy.device
    args: {{online: false}}
  - id: mark
    action: toy.mark
    args: {{batch: {batch}, report: reports/items.txt}}
"""


def recover(
    *args: str, extra: str = "tests.toyproc", crash: str = ""
) -> subprocess.CompletedProcess[str]:
    env = process_env(RECOVER_EXTRA_PROCEDURES=extra, RECOVER_CRASH_AT=crash)
    return run_process(*args, env=env, timeout=120)


def toy_site(tmp_path: Path, template: str | None, batch: str = "10") -> Path:
    site = build_site(tmp_path / "site", items=50)
    (site / "pb.yaml").write_text(PLAYBOOK.format(batch=batch))
    if template is not None:
        (site / "templates" / "toy").mkdir(parents=True)
        (site / "templates" / "toy" / "items.txt.j2").write_text(template)
    return site


def test_report_failing_mid_cursor_is_journaled_and_releases_the_site(tmp_path: Path) -> None:
    # The template stops half way through a live cursor over the catalog.
    site = toy_site(
        tmp_path,
        "{% for r in rows %}{{ r[0] }}\n{% if loop.index == 3 %}{{ nope }}{% endif %}"
        "{% endfor %}\n",
    )
    result = recover("run", str(site / "pb.yaml"), "--yes")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "internal error" not in result.stderr
    assert "report template toy/items.txt.j2:2: 'nope' is undefined" in result.stderr
    mark = steps_of(site)["mark"]
    state, error = mark["state"], mark["error"]
    assert state == "failed" and error is not None and "'nope' is undefined" in error
    # Nothing holds a lock: another writer gets in at once.
    with sqlite3.connect(site / "catalog.sqlite", timeout=0.1) as conn:
        conn.execute("UPDATE settings SET online = online")
    assert not (site / "reports").exists()  # no report, not even its directory
    # The batches committed before the report stay committed (and journaled).
    with sqlite3.connect(site / "catalog.sqlite") as conn:
        assert conn.execute("SELECT count(*) FROM items WHERE state = 'X'").fetchone() == (45,)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("line one\n{{ 1 / 0 }}\n", "toy/items.txt.j2:2: ZeroDivisionError"),
        ("\n\n{{ 9 ** (9 ** 9) }}", "toy/items.txt.j2:3 did something unsafe"),
        ("{{ rows.__class__ }}", "did something unsafe: access to attribute '__class__'"),
    ],
)
def test_report_template_errors_name_the_line(tmp_path: Path, template: str, message: str) -> None:
    site = toy_site(tmp_path, template)
    result = recover("run", str(site / "pb.yaml"), "--yes")
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_step_failing_before_its_transaction_is_journaled(tmp_path: Path) -> None:
    # Valid for `validate` (it cannot know earlier steps' state), invalid at run time.
    site = toy_site(tmp_path, None, batch='"{{ steps.offline.state | length - 10 }}"')
    assert recover("validate", str(site / "pb.yaml")).returncode == 0
    result = recover("run", str(site / "pb.yaml"), "--yes")
    assert result.returncode == 1
    assert "-6 is less than the minimum of 1" in result.stderr
    rows = {k: (v["state"], v["error"]) for k, v in steps_of(site).items()}
    assert rows["offline"][0] == "done"
    assert rows["mark"][0] == "failed" and "minimum" in (rows["mark"][1] or "")
    status = recover("status", "--site", str(site), "--json")
    runs = json.loads(status.stdout)["runs"]
    assert runs[0]["state"] == "failed"


def test_unloadable_extra_procedure_is_a_warning_not_a_traceback(tmp_path: Path) -> None:
    result = recover("world", "--help", extra="no_such_module_xyz,os")
    assert result.returncode == 0
    assert "cannot load 'no_such_module_xyz'" in result.stderr
    assert "cannot load 'os'" in result.stderr
    assert "Traceback" not in result.stderr
    assert "Usage: recover world" in result.stdout


def test_step_killed_after_its_report_rewrites_it_on_resume(tmp_path: Path) -> None:
    """The resumed run ends like an uninterrupted one: one report, no suffixed copy."""
    template = "{% for r in rows %}{{ r[0] }} {{ r[1] }}\n{% endfor %}total {{ total }}\n"
    killed = toy_site(tmp_path / "killed", template)
    whole = toy_site(tmp_path / "whole", template)
    (killed / "reports").mkdir()
    (killed / "reports" / "items.txt").write_text("an older report, kept\n")
    (whole / "reports").mkdir()
    (whole / "reports" / "items.txt").write_text("an older report, kept\n")
    crashed = recover("run", str(killed / "pb.yaml"), "--yes", crash="mark:report")
    assert crashed.returncode == -9, crashed.stderr
    assert (killed / "reports" / f"items.txt.{NOW_SUFFIX}").exists()
    claims = list((killed / ".recover" / "claims").glob("*.json"))
    assert len(claims) == 1
    resumed = recover("run", str(killed / "pb.yaml"), "--yes")
    assert resumed.returncode == 0, resumed.stderr
    assert recover("run", str(whole / "pb.yaml"), "--yes").returncode == 0
    files = sorted(p.name for p in (killed / "reports").iterdir())
    assert files == sorted(p.name for p in (whole / "reports").iterdir())
    assert files == ["items.txt", f"items.txt.{NOW_SUFFIX}"]
    for name in files:
        assert (killed / "reports" / name).read_bytes() == (whole / "reports" / name).read_bytes()
    assert not list((killed / ".recover" / "claims").glob("*.json"))
    assert steps_of(killed)["mark"]["state"] == "done"


def test_missing_report_template_says_where_it_looked(tmp_path: Path) -> None:
    site = toy_site(tmp_path, None)
    # the toy procedure registered without its shipped template
    result = recover("run", str(site / "pb.yaml"), "--yes", extra="tests.toyproc:BARE")
    assert result.returncode == 1
    assert "report template toy/items.txt.j2 not found (looked in the site's templates/" in (
        result.stderr
    )
    assert steps_of(site)["mark"]["state"] == "failed"


def test_plan_of_an_interrupted_step_says_what_was_already_committed(tmp_path: Path) -> None:
    site = toy_site(tmp_path, "{{ total }}\n")
    killed = recover("run", str(site / "pb.yaml"), "--yes", crash="mark:25")
    assert killed.returncode == -9
    plan = recover("plan", str(site / "pb.yaml"))
    assert plan.returncode == 0, plan.stderr
    # Two batches of 10 committed: items 1-5 deleted, 6-20 marked.
    assert (
        "would change items: state A -> X: 45 (15 of them committed before the interruption)"
        in (plan.stdout)
    )
    assert "DATA LOSS: 5 items (5 of them committed before the interruption)" in plan.stdout
    steps = {
        s["id"]: s
        for s in json.loads(recover("plan", str(site / "pb.yaml"), "--json").stdout)["steps"]
    }
    assert steps["mark"]["committed_before"] == {
        "changes": {"items": {"deleted": 5, "state A -> X": 15}},
        "loss": {"items": 5},
    }
    assert steps["offline"]["committed_before"] is None
