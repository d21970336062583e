"""Choosing steps: --list-steps, --start-at/--only/--skip on plan and run, inputs from
unselected steps refused unless the journal has them, and a selected run that
resumes after kill -9 exactly like an uninterrupted one."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.helpers import (
    SHIPPED_TOY_TEMPLATE,
    TOY_PLAYBOOK,
    assert_clean,
    catalog_rows,
    fix_line,
    invoke,
    process_env,
    run_process,
    snapshot,
    status,
)
from tests.toyproc import build_site

#: the toy playbook whose copy step runs only if mark marked something (an input)
GATED = TOY_PLAYBOOK.replace(
    "    action: toy.copy\n",
    '    action: toy.copy\n    when: "{{ steps.mark.outputs.marked > 0 }}"\n',
)

#: ...and whose mark step runs only once offline is done (an input from the first step)
CHAINED = GATED.replace(
    "    action: toy.mark\n",
    "    action: toy.mark\n    when: \"{{ steps.offline.state == 'done' }}\"\n",
)


@pytest.fixture
def gated(tmp_path: Path, toy_site: Path) -> Path:
    path = tmp_path / "gated.yaml"
    path.write_text(GATED, encoding="utf-8")
    return path


def _table(output: str) -> list[list[str]]:
    return [line.split() for line in output.splitlines()]


def test_list_steps_shows_id_action_destructive_and_condition(gated: Path) -> None:
    for command in ("plan", "run"):
        result = invoke(command, gated, "--list-steps")
        assert result.exit_code == 0, result.output
        rows = _table(result.stdout)
        assert rows[0] == ["STEP", "ACTION", "DESTRUCTIVE", "WHEN"]
        assert rows[1] == ["offline", "toy.device", "no", "-"]
        assert rows[2] == ["mark", "toy.mark", "yes", "-"]
        assert rows[3][:3] == ["copy", "toy.copy", "no"]
        assert " ".join(rows[3][3:]) == "{{ steps.mark.outputs.marked > 0 }}"


def test_list_steps_with_a_site_shows_the_journal_state(gated: Path, toy_site: Path) -> None:
    before = snapshot(toy_site)
    listed = invoke("plan", gated, "--site", toy_site, "--list-steps", "--skip", "offline")
    assert listed.exit_code == 0, listed.output
    rows = _table(listed.stdout)
    assert rows[0][-2:] == ["SELECTED", "STATE"]
    assert [row[-2:] for row in rows[1:]] == [
        ["no", "pending"],
        ["yes", "pending"],
        ["yes", "pending"],
    ]
    assert snapshot(toy_site) == before  # listing reads nothing it could change
    assert invoke("run", gated, "--only", "offline,mark", "--yes").exit_code == 0
    run_id = status(toy_site)["runs"][0]["run_id"]
    rows = _table(invoke("run", gated, "--site", toy_site, "--list-steps").stdout)
    assert rows[1][-3:] == ["done", "(run", f"{run_id})"]
    assert rows[2][-3:] == ["done", "(run", f"{run_id})"]
    assert rows[3][-1] == "pending"
    rows = _table(invoke("run", gated, "--list-steps", "--only", "offline,mark").stdout)
    assert [row[-1] for row in rows[1:]] == ["yes", "yes", "no"]  # no site: no state


@pytest.mark.parametrize("command", ["plan", "run"])
def test_a_step_whose_input_is_neither_selected_nor_done_is_refused(
    gated: Path, toy_site: Path, command: str
) -> None:
    before = snapshot(toy_site)
    yes = ("--yes",) if command == "run" else ()
    result = invoke(command, gated, "--only", "copy", *yes)
    assert result.exit_code == 1
    assert_clean(result)
    assert (
        "step 'copy' uses the results of step 'mark', which is neither selected nor done "
        "on this site" in result.stderr
    )
    assert "fix: select it too (--only mark,copy" in result.stderr
    assert snapshot(toy_site) == before
    assert not (toy_site / ".recover").exists()
    refused = invoke(command, gated, "--start-at", "copy", *yes)
    assert refused.exit_code == 1 and "'mark'" in refused.stderr


def test_the_fix_followed_works_and_the_journal_supplies_inputs(
    gated: Path, toy_site: Path
) -> None:
    assert invoke("run", gated, "--only", "offline").exit_code == 0
    refused = invoke("run", gated, "--only", "copy")
    assert refused.exit_code == 1
    followed = invoke("run", gated, "--only", "mark,copy", "--yes")  # as the fix says
    assert followed.exit_code == 0, followed.output
    assert (toy_site / "media" / "copy.bin").exists()
    # a later run of copy alone takes mark's outputs from the journal (another run)
    (toy_site / "media" / "copy.bin").unlink()
    planned = invoke("plan", gated, "--only", "copy")
    assert planned.exit_code == 0, planned.output
    assert "[ok] copy: toy.copy  would run" in planned.stdout
    assert "offline" not in planned.stdout.split("\n\n", 1)[1]  # unselected: not shown
    ran = invoke("run", gated, "--only", "copy")
    assert ran.exit_code == 0, ran.output
    assert (toy_site / "media" / "copy.bin").exists()
    runs = status(toy_site)["runs"]
    assert [[s["step_id"] for s in run["steps"]] for run in runs] == [
        ["copy"],
        ["mark", "copy"],
        ["offline"],
    ]
    assert runs[0]["steps"][0]["state"] == "done"  # its `when` saw mark's outputs


def test_a_selection_is_part_of_the_run_identity(toy_playbook: Path, toy_site: Path) -> None:
    assert invoke("run", toy_playbook, "--only", "offline").exit_code == 0
    again = invoke("run", toy_playbook, "--only", "offline")
    assert "already finished on this site" in again.stdout
    same = invoke("run", toy_playbook, "--start-at", "offline", "--skip", "mark,copy")
    assert "already finished on this site" in same.stdout  # the same steps: the same run
    whole = invoke("run", toy_playbook, "--yes")  # all steps: another run
    assert whole.exit_code == 0 and "already finished" not in whole.stdout
    assert [s["step_id"] for s in status(toy_site)["runs"][0]["steps"]] == [
        "offline",
        "mark",
        "copy",
    ]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--start-at", "mrak"), "--start-at mrak: the playbook has no step 'mrak'; did you mean"),
        (("--only", "offline,cpy"), "--only cpy: the playbook has no step 'cpy'; did you mean"),
        (("--skip", "offline,mark,copy"), "this selection leaves no step to run"),
        (("--only", ","), "--only needs step ids"),
    ],
)
def test_a_bad_selection_is_a_usage_error(
    toy_playbook: Path, toy_site: Path, options: tuple[str, ...], message: str
) -> None:
    result = invoke("plan", toy_playbook, *options)
    assert result.exit_code == 2
    assert_clean(result)
    assert message in result.stderr


def _toy_tree(base: Path) -> tuple[Path, Path]:
    """A toy site with its report template inside (a real process does not see the
    test's shipped templates), and the playbook beside it."""
    site = build_site(base / "site")
    (site / "templates" / "toy").mkdir(parents=True)
    (site / "templates" / "toy" / "items.txt.j2").write_text(SHIPPED_TOY_TEMPLATE)
    playbook = base / "toy.yaml"
    playbook.write_text(CHAINED, encoding="utf-8")
    return site, playbook


def test_a_selected_run_killed_9_resumes_to_the_uninterrupted_end(
    tmp_path: Path, toy_env: None
) -> None:
    ref_site, ref_playbook = _toy_tree(tmp_path / "reference")
    assert invoke("run", ref_playbook, "--only", "offline").exit_code == 0
    assert invoke("run", ref_playbook, "--start-at", "mark", "--yes").exit_code == 0
    site, playbook = _toy_tree(tmp_path / "crashed")
    refused = invoke("run", playbook, "--start-at", "mark", "--yes")
    assert refused.exit_code == 1  # mark reads offline's state: not selected, not done
    assert "step 'mark' uses the results of step 'offline'" in refused.stderr
    assert "--only offline" in fix_line(refused.stderr)
    assert not (site / ".recover").exists()
    assert invoke("run", playbook, "--only", "offline").exit_code == 0  # the fix, followed

    killed = run_process(
        "run",
        playbook,
        "--start-at",
        "mark",
        "--yes",
        env=process_env(RECOVER_CRASH_AT="mark:35"),
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    interrupted = status(site)["runs"][0]
    assert interrupted["state"] == "running"
    assert [s["step_id"] for s in interrupted["steps"]] == ["mark"]
    assert interrupted["steps"][0]["state_data"] == {"done": 30}

    resumed = invoke("run", playbook, "--start-at", "mark", "--yes")
    assert resumed.exit_code == 0, resumed.output
    assert f"Run {interrupted['run_id']} resumed and finished" in resumed.stdout

    assert catalog_rows(site / "catalog.sqlite") == catalog_rows(ref_site / "catalog.sqlite")
    keep = {"catalog.sqlite"}
    assert {k: v for k, v in snapshot(site, state=False).items() if k not in keep} == {
        k: v for k, v in snapshot(ref_site, state=False).items() if k not in keep
    }
    ref_runs, runs = status(ref_site)["runs"], status(site)["runs"]
    assert len(runs) == len(ref_runs) == 2
    for ref_run, run in zip(ref_runs, runs, strict=True):
        assert run["params"] == ref_run["params"] and run["state"] == ref_run["state"] == "done"
        for ref_step, step in zip(ref_run["steps"], run["steps"], strict=True):
            for key in ("step_id", "state", "changes", "loss", "outputs", "reports", "media"):
                assert step[key] == ref_step[key], (step["step_id"], key)
    assert runs[0]["steps"][0]["attempts"] == 2
    assert runs[0]["steps"][0]["outputs"] == {"marked": 100}  # its `when` was true
    assert json.loads(json.dumps(runs[0]["steps"][1]["outputs"])) == {"size": 90}
