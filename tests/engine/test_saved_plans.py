"""Saved plans stand on their own: `run --plan FILE` alone, checked before anything
else, options beside it compared with it, stale plans explained item by item,
`show` printing the plan as `plan` did. Through the CLI on toy sites."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from tests.helpers import TOY_PLAYBOOK, assert_clean, fix_line, invoke, snapshot, status
from tests.toyproc import build_site


def _hint(output: str) -> list[str]:
    """The command `plan -o` says to run the plan with, as words."""
    line = next(ln for ln in output.splitlines() if ln.startswith("Plan saved to "))
    command = line.split("`")[1]
    words = shlex.split(command)
    assert words[0] == "recover"
    return words[1:]


def test_a_saved_plan_runs_alone_on_its_site_where_the_playbook_finished_elsewhere(
    toy_playbook: Path, toy_site: Path, tmp_path: Path
) -> None:
    # the playbook has finished on its default site (site.root)...
    assert invoke("run", toy_playbook, "--yes").exit_code == 0
    # ...and the operator plans it for another site with other params
    other = build_site(tmp_path / "other")
    plan_file = tmp_path / "p4.json"
    planned = invoke(
        "plan",
        toy_playbook,
        "--site",
        other,
        "--param",
        "batch=3",
        "--skip",
        "copy",
        "-o",
        plan_file,
    )
    assert planned.exit_code == 0, planned.output
    words = _hint(planned.stdout)
    assert words == ["run", "--plan", str(plan_file)]  # nothing else needed
    assert "confirm 1 destructive step(s); add --yes" in planned.stdout
    ran = invoke(*words, "--yes")
    assert ran.exit_code == 0, ran.output
    assert "already finished" not in ran.output
    (run,) = status(other)["runs"]
    assert run["params"] == {"batch": 3, "lossy": 5}
    assert [s["step_id"] for s in run["steps"]] == ["offline", "mark"]  # its selection too
    assert run["steps"][1]["state_data"] == {"done": 99}  # 33 batches of 3
    assert not (other / "media" / "copy.bin").exists()
    assert len(status(toy_site)["runs"]) == 1  # the default site was not touched again


def test_the_hint_works_exactly_as_printed(
    toy_playbook: Path, toy_site: Path, tmp_path: Path
) -> None:
    plan_file = tmp_path / "saved plan.json"  # a space: the hint quotes it
    planned = invoke("plan", toy_playbook, "--only", "offline,copy", "-o", plan_file)
    assert planned.exit_code == 0, planned.output
    words = _hint(planned.stdout)
    assert "destructive" not in planned.stdout.splitlines()[-1]  # nothing to confirm
    ran = invoke(*words)
    assert ran.exit_code == 0, ran.output
    assert (toy_site / "media" / "copy.bin").exists()


def test_options_beside_a_plan_that_differ_are_refused_each_named(
    toy_playbook: Path, toy_site: Path, tmp_path: Path
) -> None:
    plan_file = tmp_path / "plan.json"
    assert invoke("plan", toy_playbook, "-o", plan_file).exit_code == 0
    before = snapshot(toy_site)
    other = build_site(tmp_path / "other")
    result = invoke(
        "run",
        toy_playbook,
        "--plan",
        plan_file,
        "--site",
        other,
        "--param",
        "batch=4",
        "--param",
        "lossy=5",
        "--only",
        "mark",
        "--yes",
    )
    assert result.exit_code == 3
    assert_clean(result)
    err = result.stderr
    assert f"site: plan '{toy_site}' -> given '{other}'" in err
    assert "param batch: plan 10 -> given 4" in err
    assert "param lossy" not in err  # the same as the plan's: not a difference
    assert "steps: plan 'all' -> given mark" in err
    assert f"fix: run the plan as it was made: `recover run --plan {plan_file}`" in err
    assert snapshot(toy_site) == before and not (other / ".recover").exists()
    # the same values as the plan's are no difference, and the fix works as printed
    same = invoke(
        "run", toy_playbook, "--plan", plan_file, "--site", toy_site, "--yes", "--param", "batch=10"
    )
    assert same.exit_code == 0, same.output


def test_a_plan_is_checked_before_already_finished(
    toy_playbook: Path, toy_site: Path, tmp_path: Path
) -> None:
    plan_file = tmp_path / "plan.json"
    assert invoke("plan", toy_playbook, "-o", plan_file).exit_code == 0
    assert invoke("run", toy_playbook, "--yes").exit_code == 0  # ran without the plan
    result = invoke("run", "--plan", plan_file, "--yes")
    assert result.exit_code == 3
    assert "already finished" not in result.output
    err = result.stderr
    assert "the plan no longer matches the site" in err
    assert "changed: catalog.sqlite (row counts: items 100 -> 95)" in err
    assert "added: media/copy.bin" in err and "added: reports/items.txt" in err
    run_id = status(toy_site)["runs"][0]["run_id"]
    assert f"steps ran since: offline, mark, copy (run {run_id})" in err
    assert fix_line(err).startswith("fix: make a fresh plan")


def test_a_plan_run_to_completion_says_so_when_run_again(
    toy_playbook: Path, toy_site: Path, tmp_path: Path
) -> None:
    plan_file = tmp_path / "plan.json"
    assert invoke("plan", toy_playbook, "-o", plan_file).exit_code == 0
    assert invoke("run", "--plan", plan_file, "--yes").exit_code == 0
    again = invoke("run", "--plan", plan_file, "--yes")
    assert again.exit_code == 0
    assert "already finished on this site; nothing to do" in again.stdout


def test_a_stale_plan_names_the_changed_parameter_and_table(
    toy_playbook: Path, toy_site: Path, tmp_path: Path
) -> None:
    plan_file = tmp_path / "plan.json"
    assert invoke("plan", toy_playbook, "-o", plan_file).exit_code == 0
    toy_playbook.write_text(TOY_PLAYBOOK.replace("default: 10", "default: 7"))
    import sqlite3

    with sqlite3.connect(toy_site / "catalog.sqlite") as conn:
        conn.execute("DELETE FROM items WHERE id > 90")
    conn.close()
    result = invoke("run", "--plan", plan_file, "--yes")
    assert result.exit_code == 3
    assert_clean(result)
    err = result.stderr
    assert f"the playbook file {toy_playbook} changed since the plan was made" in err
    assert "param batch: default 10 -> 7 in the playbook" in err
    assert "param lossy" not in err
    assert "changed: catalog.sqlite (row counts: items 100 -> 90)" in err
    assert "steps ran since" not in err
    # the fix, followed, works
    assert invoke("plan", toy_playbook, "-o", plan_file).exit_code == 0
    assert invoke("run", "--plan", plan_file, "--yes").exit_code == 0


def test_show_prints_the_plan_as_plan_printed_it(
    toy_playbook: Path, toy_site: Path, tmp_path: Path
) -> None:
    plan_file = tmp_path / "plan.json"
    planned = invoke("plan", toy_playbook, "--param", "batch=4", "--skip", "copy", "-o", plan_file)
    assert planned.exit_code == 0
    printed = planned.stdout.rsplit("\nPlan saved to ", 1)[0] + "\n"
    shown = invoke("show", plan_file)
    assert shown.exit_code == 0
    assert shown.stdout == printed
    assert "steps selected: offline, mark" in shown.stdout
    as_json = invoke("plan", toy_playbook, "--param", "batch=4", "--skip", "copy", "--json")
    assert invoke("show", plan_file, "--json").stdout == as_json.stdout
    saved = json.loads(plan_file.read_text())
    assert saved["selection"] == ["offline", "mark"]
    assert saved["catalog_rows"] == {"catalog.sqlite": {"items": 100, "settings": 1}}


def test_a_plan_of_an_earlier_format_or_a_missing_playbook_is_refused_with_the_fix(
    toy_playbook: Path, toy_site: Path, tmp_path: Path
) -> None:
    plan_file = tmp_path / "plan.json"
    assert invoke("plan", toy_playbook, "-o", plan_file).exit_code == 0
    data = json.loads(plan_file.read_text())
    old = tmp_path / "old.json"
    old.write_text(json.dumps({**data, "format": 1}))
    for command in (("run", "--plan", old, "--yes"), ("show", old)):
        result = invoke(*command)
        assert result.exit_code == 3
        assert "saved in plan format 1" in result.stderr
        assert "fix: make a fresh plan" in result.stderr
    toy_playbook.rename(tmp_path / "moved.yaml")
    result = invoke("run", "--plan", plan_file, "--yes")
    assert result.exit_code == 3
    assert f"the plan's playbook {toy_playbook} no longer exists" in result.stderr
    assert not (toy_site / ".recover").exists()


def test_run_needs_a_playbook_or_a_plan(toy_env: None) -> None:
    result = invoke("run", "--yes")
    assert result.exit_code == 2
    assert_clean(result)
    assert "run needs a PLAYBOOK or a saved plan" in result.stderr


def test_a_plan_whose_site_is_gone_is_refused_as_stale(
    toy_playbook: Path, toy_site: Path, tmp_path: Path
) -> None:
    plan_file = tmp_path / "plan.json"
    assert invoke("plan", toy_playbook, "-o", plan_file).exit_code == 0
    toy_site.rename(tmp_path / "elsewhere")
    result = invoke("run", "--plan", plan_file, "--yes")
    assert result.exit_code == 3
    assert_clean(result)
    assert f"the plan {plan_file} no longer fits its playbook and site" in result.stderr
    assert "fix: make a fresh plan" in result.stderr


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("selection", "mark"),
        ("selection", []),
        ("params", ["batch"]),
        ("catalog_rows", {"catalog.sqlite": 5}),
        ("journal_steps", {"run": "mark"}),
        ("fingerprint", None),
        ("site", 3),
    ],
)
def test_a_hand_edited_plan_of_the_wrong_shape_is_refused_as_damaged(
    toy_playbook: Path, toy_site: Path, tmp_path: Path, key: str, value: object
) -> None:
    plan_file = tmp_path / "plan.json"
    assert invoke("plan", toy_playbook, "-o", plan_file).exit_code == 0
    plan_file.write_text(json.dumps({**json.loads(plan_file.read_text()), key: value}))
    result = invoke("run", "--plan", plan_file, "--yes")
    assert result.exit_code == 3
    assert_clean(result)
    assert f"{plan_file} is damaged: {key} missing or not as" in result.stderr
    assert not (toy_site / ".recover").exists()


def test_a_plan_says_when_a_new_run_repeats_one_that_finished_with_other_params(
    toy_playbook: Path, toy_site: Path
) -> None:
    assert invoke("run", toy_playbook, "--yes").exit_code == 0
    run_id = status(toy_site)["runs"][0]["run_id"]
    other = invoke("plan", toy_playbook, "--param", "batch=20")
    assert (
        f"Note: run {run_id} of toy-run finished on this site with other params "
        "(batch: 10 -> 20); this is a new run, and it does its steps again." in other.stdout
    )
    steps = invoke("plan", toy_playbook, "--only", "copy")
    assert "with other steps selected; this is a new run" in steps.stdout
    same = invoke("plan", toy_playbook)
    assert "Note: run" not in same.stdout and "already ran to completion" in same.stdout
