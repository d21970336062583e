"""plan and run end to end on the toy site: dry run, saved plans, the safety gates,
resume, status, failures. Through the CLI in-process unless a real process is needed."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import (
    TOY_PLAYBOOK,
    assert_clean,
    catalog_rows,
    invoke,
    snapshot,
    status,
    steps_of,
)

WritePlaybook = Callable[..., Path]


def _items(site: Path) -> list[tuple[int, str]]:
    return [(r[0], r[1]) for r in catalog_rows(site / "catalog.sqlite")["items"]]


def _set_online(site: Path, online: int) -> None:
    with sqlite3.connect(site / "catalog.sqlite") as conn:
        conn.execute("UPDATE settings SET online = ?", (online,))
    conn.close()


# -- plan ----------------------------------------------------------------------------


def test_plan_predicts_everything_and_changes_no_byte(toy_playbook: Path, toy_site: Path) -> None:
    before = snapshot(toy_site)
    result = invoke("plan", toy_playbook)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "[ok] offline: toy.device  would run" in out
    assert "would change settings: device offline: 1" in out
    assert "[ok] mark: toy.mark  [destructive]  would run" in out
    assert "would change items: state A -> X: 95" in out
    assert "would change items: deleted: 5" in out
    assert "report would be written to reports/items.txt" in out
    assert "DATA LOSS: 5 items" in out
    assert "e.g. item 1, item 2, item 3, item 4, item 5" in out
    assert "would copy media/tape.bin -> media/copy.bin (90 bytes)" in out
    assert "Data loss: 5 items (allowed: 5)." in out
    assert "1 destructive step(s) need confirmation" in out
    assert out.rstrip().endswith("Nothing was changed.")
    assert snapshot(toy_site) == before
    assert not (toy_site / ".recover").exists()


def test_plan_json_matches_what_the_run_does(toy_playbook: Path, toy_site: Path) -> None:
    result = invoke("plan", toy_playbook, "--json")
    assert result.exit_code == 0
    planned = json.loads(result.stdout)
    assert planned["verdict"] == "ok" and planned["run_state"] is None
    assert planned["total_loss"] == {"items": 5}
    assert planned["allowed_loss"] == {"items": 5}
    assert planned["params"] == {"batch": 10, "lossy": 5}
    ran = invoke("run", toy_playbook, "--yes")
    assert ran.exit_code == 0, ran.output
    done = steps_of(toy_site)
    for step in planned["steps"]:
        assert step["status"] == "done"
        record = done[step["id"]]
        for key in ("changes", "loss", "loss_examples", "outputs", "reports", "media"):
            assert step[key] == record[key], key
    assert done["mark"]["outputs"] == {"marked": 100}


def test_plan_of_a_finished_run_and_of_an_interrupted_one_changes_nothing(
    toy_playbook: Path, toy_site: Path
) -> None:
    assert invoke("run", toy_playbook, "--yes").exit_code == 0
    before = snapshot(toy_site)
    result = invoke("plan", toy_playbook)
    assert result.exit_code == 0
    assert "already ran to completion" in result.stdout
    assert "Verdict: nothing to do." in result.stdout
    assert "[ok] mark: toy.mark  [destructive]  done already" in result.stdout
    assert snapshot(toy_site) == before


def test_plan_reports_every_failing_check_and_goes_on(
    toy_site: Path, write_playbook: WritePlaybook
) -> None:
    text = TOY_PLAYBOOK.replace("args: {online: false}", "args: {online: true}")
    text = text.replace("src: media/tape.bin", "src: media/none.bin")
    path = write_playbook(text)
    before = snapshot(toy_site)
    result = invoke("plan", path)
    assert result.exit_code == 1
    assert_clean(result)
    out = result.stdout
    assert "[!!] mark: toy.mark  [destructive]  failed" in out
    assert "FAIL device offline (device is online)" in out
    assert "fix: run toy.device with online: false first" in out
    assert "FAIL media/none.bin exists" in out
    assert "Verdict: would FAIL" in out
    assert snapshot(toy_site) == before


# -- run, resume, status ------------------------------------------------------------------


def test_run_then_run_again_does_nothing(toy_playbook: Path, toy_site: Path) -> None:
    result = invoke("run", toy_playbook, "--yes")
    assert result.exit_code == 0, result.output
    assert "Data loss: 5 items (allowed: 5)." in result.stdout
    assert "Reports: reports/items.txt" in result.stdout
    assert _items(toy_site) == [(i, "X") for i in range(6, 101)]
    assert (toy_site / "media/copy.bin").read_bytes() == (toy_site / "media/tape.bin").read_bytes()
    before = snapshot(toy_site, state=False)
    journal = (toy_site / ".recover/journal.sqlite").read_bytes()
    again = invoke("run", toy_playbook, "--yes")
    assert again.exit_code == 0
    assert "already finished on this site; nothing to do" in again.stdout
    assert snapshot(toy_site, state=False) == before
    assert (toy_site / ".recover/journal.sqlite").read_bytes() == journal
    assert len(status(toy_site)["runs"]) == 1


def test_new_run_starts_over(toy_playbook: Path, toy_site: Path) -> None:
    assert invoke("run", toy_playbook, "--yes").exit_code == 0
    result = invoke("run", toy_playbook, "--yes", "--new-run")
    assert result.exit_code == 0, result.output
    runs = status(toy_site)["runs"]
    assert len(runs) == 2 and runs[0]["run_id"] != runs[1]["run_id"]
    assert {s["step_id"]: s["outputs"] for s in runs[0]["steps"]}["mark"] == {"marked": 0}


def test_status_shows_runs_steps_counts_and_loss(toy_playbook: Path, toy_site: Path) -> None:
    empty = invoke("status", "--site", toy_site)
    assert empty.exit_code == 0 and "No runs recorded on this site yet." in empty.stdout
    assert invoke("run", toy_playbook, "--yes").exit_code == 0
    result = invoke("status", "--site", toy_site)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "Site is not locked."
    assert any(line.startswith("run 2026") and line.endswith("toy-run  done") for line in lines)
    assert f"  playbook: {toy_playbook.resolve()}" in lines
    assert any("started 2026-01-02T03:04:05+00:00" in line for line in lines)
    mark = next(line for line in lines if "] mark " in line)
    assert "done" in mark and "tries 1" in mark
    assert "items: deleted: 5; items: state A -> X: 95" in mark and "LOSS 5 items" in mark
    data = status(toy_site)
    assert data["locked_by"] is None
    (run,) = data["runs"]
    assert run["state"] == "done" and run["playbook_name"] == "toy-run"
    assert run["params"] == {"batch": 10, "lossy": 5}  # an object, not JSON text
    assert "params_json" not in run
    assert "  params: batch=10, lossy=5" in lines
    assert [(s["step_id"], s["state"]) for s in run["steps"]] == [
        ("offline", "done"),
        ("mark", "done"),
        ("copy", "done"),
    ]
    assert run["steps"][1]["loss"] == {"items": 5}
    assert run["steps"][1]["reports"] == ["reports/items.txt"]


def test_status_limit(toy_playbook: Path, toy_site: Path) -> None:
    assert invoke("run", toy_playbook, "--yes").exit_code == 0
    assert invoke("run", toy_playbook, "--yes", "--new-run").exit_code == 0
    result = invoke("status", "--site", toy_site, "--limit", "1", "--json")
    assert len(json.loads(result.stdout)["runs"]) == 1


def test_status_of_a_missing_site(tmp_path: Path, toy_env: None) -> None:
    result = invoke("status", "--site", tmp_path / "nope")
    assert result.exit_code == 1
    assert_clean(result)
    assert "does not exist" in result.stderr


def test_when_false_skips_a_step(toy_site: Path, write_playbook: WritePlaybook) -> None:
    text = TOY_PLAYBOOK.replace(
        "    action: toy.copy\n",
        '    action: toy.copy\n    when: "{{ steps.mark.outputs.marked > 1000 }}"\n',
    )
    result = invoke("run", write_playbook(text), "--yes")
    assert result.exit_code == 0, result.output
    assert steps_of(toy_site)["copy"]["state"] == "skipped"
    assert not (toy_site / "media/copy.bin").exists()


def test_params_reach_the_steps(toy_playbook: Path, toy_site: Path) -> None:
    result = invoke("run", toy_playbook, "--yes", "--param", "batch=7")
    assert result.exit_code == 0, result.output
    (run,) = status(toy_site)["runs"]
    assert run["params"]["batch"] == 7
    assert steps_of(toy_site)["mark"]["state_data"] == {"done": 98}  # 14 batches of 7


# -- failures: exit 1, clean message, nothing half done --------------------------------------


def test_a_failed_precondition_exits_1_and_is_journaled(
    toy_site: Path, write_playbook: WritePlaybook
) -> None:
    _set_online(toy_site, 1)
    text = TOY_PLAYBOOK.replace(
        "  - id: offline\n    action: toy.device\n    args: {online: false}\n", ""
    )
    before = snapshot(toy_site, state=False)
    result = invoke("run", write_playbook(text), "--yes")
    assert result.exit_code == 1
    assert_clean(result)
    assert "error: step 'mark': device offline: device is online" in result.stderr
    assert "fix: run toy.device with online: false first" in result.stderr
    assert snapshot(toy_site, state=False) == before
    (run,) = status(toy_site)["runs"]
    assert run["state"] == "failed"
    mark = {s["step_id"]: s for s in run["steps"]}["mark"]
    assert mark["state"] == "failed" and "device is online" in mark["error"]


def test_a_corrupt_catalog_is_a_clear_error(toy_playbook: Path, toy_site: Path) -> None:
    (toy_site / "catalog.sqlite").write_bytes(b"this is not SQLite at all" * 200)
    for command in (("plan",), ("run", "--yes")):
        result = invoke(*command, toy_playbook)
        assert result.exit_code == 1, result.output
        assert_clean(result)
        assert "catalog.sqlite is not a readable SQLite database" in result.output
    assert (toy_site / "catalog.sqlite").read_bytes() == b"this is not SQLite at all" * 200


def test_a_missing_catalog_is_a_clear_error(toy_playbook: Path, toy_site: Path) -> None:
    (toy_site / "catalog.sqlite").unlink()
    result = invoke("run", toy_playbook, "--yes")
    assert result.exit_code == 1
    assert_clean(result)
    assert "database catalog.sqlite does not exist" in result.stderr


@pytest.mark.parametrize("garbage", [b"garbage\n", b"SQLite format 3\x00" + b"\xff" * 200])
def test_a_corrupt_journal_is_a_clear_error(
    toy_playbook: Path, toy_site: Path, garbage: bytes
) -> None:
    (toy_site / ".recover").mkdir()
    (toy_site / ".recover" / "journal.sqlite").write_bytes(garbage)
    before = snapshot(toy_site)
    for command in (("status", "--site", toy_site), ("run", toy_playbook, "--yes")):
        result = invoke(*command)
        assert result.exit_code == 1, result.output
        assert_clean(result)
        assert "journal" in result.stderr and "unreadable" in result.stderr
        assert "fix:" in result.stderr
    assert snapshot(toy_site, state=False) == {
        k: v for k, v in before.items() if not k.startswith(".recover")
    }


def test_plan_with_a_corrupt_journal_names_the_sites_journal(
    toy_playbook: Path, toy_site: Path
) -> None:
    (toy_site / ".recover").mkdir()
    (toy_site / ".recover" / "journal.sqlite").write_bytes(b"garbage\n")
    result = invoke("plan", toy_playbook)
    assert result.exit_code == 1
    assert_clean(result)
    assert str(toy_site / ".recover" / "journal.sqlite") in result.stderr
    assert "recover-plan-" not in result.stderr


def test_a_missing_site_is_a_clear_error(tmp_path: Path, toy_playbook: Path) -> None:
    for command in (("plan",), ("run", "--yes")):
        result = invoke(*command, toy_playbook, "--site", tmp_path / "nope")
        assert result.exit_code == 1
        assert_clean(result)
        assert "does not exist" in result.stderr and "fix:" in result.stderr


def test_a_run_time_path_escape_through_a_param_is_refused(
    toy_site: Path, write_playbook: WritePlaybook, tmp_path: Path
) -> None:
    text = TOY_PLAYBOOK.replace(
        "params:\n", "params:\n  dst: {type: string, default: media/copy.bin}\n"
    ).replace("dst: media/copy.bin", 'dst: "{{ dst }}"')
    path = write_playbook(text)
    before = snapshot(tmp_path)
    for command in (("plan",), ("run", "--yes")):
        result = invoke(*command, path, "--param", "dst=../../stolen.bin")
        assert result.exit_code == 1, result.output
        assert_clean(result)
        assert "leaves the site directory" in result.output
    assert not (tmp_path.parent / "stolen.bin").exists()
    after = snapshot(tmp_path)
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    assert not any(k.startswith("site/media") for k in changed)


def test_a_param_making_a_later_steps_args_invalid_is_refused_before_any_step(
    toy_playbook: Path, toy_site: Path
) -> None:
    before = snapshot(toy_site)
    result = invoke("run", toy_playbook, "--yes", "--param", "batch=0")
    assert result.exit_code == 1
    assert_clean(result)
    assert "0 is less than the minimum of 1" in result.stderr
    assert "problem(s) with these params, before any step ran" in result.stderr
    assert snapshot(toy_site) == before
    assert not (toy_site / ".recover").exists()


# -- safety gates: exit 3 ---------------------------------------------------------------------


def test_no_tty_and_no_yes_refuses_before_touching_anything(
    toy_playbook: Path, toy_site: Path
) -> None:
    before = snapshot(toy_site)
    result = invoke("run", toy_playbook)
    assert result.exit_code == 3
    assert_clean(result)
    assert "need confirmation (mark)" in result.stderr
    assert "nothing was changed" in result.stderr
    assert "fix: review `recover plan`, then re-run with --yes" in result.stderr
    assert snapshot(toy_site) == before
    assert not (toy_site / ".recover").exists()


def test_a_playbook_without_destructive_steps_needs_no_confirmation(
    toy_site: Path, write_playbook: WritePlaybook
) -> None:
    text = TOY_PLAYBOOK.replace(
        "  - id: mark\n    action: toy.mark\n"
        '    args: {batch: "{{ batch }}", report: reports/items.txt}\n',
        "",
    )
    result = invoke("run", write_playbook(text))
    assert result.exit_code == 0, result.output


def test_the_loss_budget_refuses_and_rolls_back(toy_playbook: Path, toy_site: Path) -> None:
    planned = invoke("plan", toy_playbook, "--param", "lossy=4")
    assert planned.exit_code == 3
    assert "[NO] mark" in planned.stdout
    assert "would bring the data loss to 5 items; the playbook allows 4" in planned.stdout
    assert "Verdict: would be REFUSED by a safety gate" in planned.stdout
    items = _items(toy_site)
    result = invoke("run", toy_playbook, "--yes", "--param", "lossy=4")
    assert result.exit_code == 3
    assert_clean(result)
    assert "the playbook allows 4; nothing of this step was committed" in result.stderr
    # The budget is the param `lossy`: the fix names it and the least value that works.
    assert "run again with --param lossy=5 (or more)" in result.stderr
    assert _items(toy_site) == items
    assert not (toy_site / "reports").exists()
    (run,) = status(toy_site)["runs"]
    states = {s["step_id"]: s["state"] for s in run["steps"]}
    assert states == {"offline": "done", "mark": "refused"}
    assert run["state"] == "failed"
    followed = invoke("run", toy_playbook, "--yes", "--param", "lossy=5")
    assert followed.exit_code == 0, followed.output


def test_no_loss_budget_means_no_loss(toy_site: Path, write_playbook: WritePlaybook) -> None:
    text = TOY_PLAYBOOK.replace('  allow_loss: {items: "{{ lossy }}"}\n', "  allow_loss: {}\n")
    result = invoke("run", write_playbook(text), "--yes")
    assert result.exit_code == 3
    assert "the playbook allows 0" in result.stderr


def test_loss_budget_unlimited(toy_site: Path, write_playbook: WritePlaybook) -> None:
    text = TOY_PLAYBOOK.replace('{items: "{{ lossy }}"}', "{items: unlimited}")
    result = invoke("run", write_playbook(text), "--yes")
    assert result.exit_code == 0, result.output
    assert "Data loss: 5 items (allowed: unlimited)." in result.stdout


def test_a_bad_rendered_loss_budget_is_refused(toy_playbook: Path, toy_site: Path) -> None:
    result = invoke("plan", toy_playbook, "--param", "lossy=-1")
    assert result.exit_code == 1
    assert_clean(result)
    assert "allow_loss.items must be a whole number >= 0 or 'unlimited', got -1" in result.stderr
    assert f"{toy_playbook}:" in result.stderr


def test_saved_plan_then_run_with_it(toy_playbook: Path, toy_site: Path, tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.json"
    before = snapshot(toy_site)
    result = invoke("plan", toy_playbook, "-o", plan_file)
    assert result.exit_code == 0
    assert f"Plan saved to {plan_file}" in result.stdout
    assert snapshot(toy_site) == before
    saved = json.loads(plan_file.read_text())
    assert saved["format"] == 2
    assert "catalog.sqlite" in saved["fingerprint"]
    assert saved["site"] == str(toy_site)
    ran = invoke("run", toy_playbook, "--yes", "--plan", plan_file)
    assert ran.exit_code == 0, ran.output


def test_a_stale_plan_is_refused_with_what_changed(
    toy_playbook: Path, toy_site: Path, tmp_path: Path
) -> None:
    plan_file = tmp_path / "plan.json"
    assert invoke("plan", toy_playbook, "-o", plan_file).exit_code == 0
    (toy_site / "media" / "tape.bin").write_bytes(b"changed under the plan")
    (toy_site / "media" / "new.bin").write_bytes(b"new")
    (toy_site / "scenario.json").unlink()
    before = snapshot(toy_site)
    result = invoke("run", toy_playbook, "--yes", "--plan", plan_file)
    assert result.exit_code == 3
    assert_clean(result)
    assert "the plan no longer matches the site" in result.stderr
    assert "changed: media/tape.bin" in result.stderr
    assert "added: media/new.bin" in result.stderr
    assert "removed: scenario.json" in result.stderr
    assert "fix: make a fresh plan" in result.stderr
    assert snapshot(toy_site, state=False) == {
        k: v for k, v in before.items() if not k.startswith(".recover")
    }
    assert _items(toy_site)[0] == (1, "A")


def test_a_plan_for_other_params_or_playbook_is_refused(
    toy_playbook: Path, toy_site: Path, tmp_path: Path, write_playbook: WritePlaybook
) -> None:
    plan_file = tmp_path / "plan.json"
    assert invoke("plan", toy_playbook, "-o", plan_file).exit_code == 0
    result = invoke("run", toy_playbook, "--yes", "--plan", plan_file, "--param", "batch=5")
    assert result.exit_code == 3
    assert "param batch: plan 10 -> given 5" in result.stderr
    other = write_playbook(TOY_PLAYBOOK.replace("description: the toy", "description: a toy"))
    result = invoke("run", other, "--yes", "--plan", plan_file)
    assert result.exit_code == 3
    assert f"playbook: plan '{toy_playbook}' -> given '{other}'" in result.stderr
    toy_playbook.write_text(TOY_PLAYBOOK.replace("description: the toy", "description: a toy"))
    result = invoke("run", "--yes", "--plan", plan_file)
    assert result.exit_code == 3
    assert f"the playbook file {toy_playbook} changed since the plan was made" in result.stderr


@pytest.mark.parametrize("content", [None, "not json", '{"format": 99}', "[1, 2]"])
def test_a_missing_or_bad_plan_file_is_refused(
    toy_playbook: Path, toy_site: Path, tmp_path: Path, content: str | None
) -> None:
    plan_file = tmp_path / "plan.json"
    if content is not None:
        plan_file.write_text(content)
    before = snapshot(toy_site)
    result = invoke("run", toy_playbook, "--yes", "--plan", plan_file)
    assert result.exit_code == 3
    assert_clean(result)
    assert "plan" in result.stderr
    assert snapshot(toy_site, state=False) == before


def test_extra_confirmations_reach_the_steps(
    toy_site: Path, write_playbook: WritePlaybook, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bool] = []
    from tests.toyproc import Device

    original = Device.run

    def spy(self: Device, ctx: object) -> None:
        seen.append(ctx.confirmed("wide") and not ctx.confirmed("other"))  # type: ignore[attr-defined]
        original(self, ctx)  # type: ignore[arg-type]

    monkeypatch.setattr(Device, "run", spy)
    path = write_playbook(TOY_PLAYBOOK)
    assert invoke("plan", path, "--confirm", "wide").exit_code == 0
    assert seen == [True]


def test_the_loss_budget_keeps_batches_committed_within_it(
    toy_playbook: Path, toy_site: Path
) -> None:
    with sqlite3.connect(toy_site / "catalog.sqlite") as conn:
        conn.execute("UPDATE items SET bad = 1 WHERE id BETWEEN 51 AND 53")
    conn.close()
    result = invoke("run", toy_playbook, "--yes")
    assert result.exit_code == 3
    assert_clean(result)
    assert "would bring the data loss to 8 items; the playbook allows 5" in result.stderr
    assert "its batches committed before this one stay, with 5 items lost" in result.stderr
    items = dict(_items(toy_site))
    assert 1 not in items and items[6] == "X" and items[50] == "X"  # batches 1-5 stay
    assert items[51] == "A" and items[60] == "A" and items[100] == "A"  # batch 6 rolled back
    mark = steps_of(toy_site)["mark"]
    assert mark["state"] == "refused"
    assert mark["loss"] == {"items": 5} and mark["state_data"] == {"done": 50}
    assert mark["changes"]["items"] == {"state A -> X": 45, "deleted": 5}


def test_a_catalog_linked_from_outside_the_site_is_refused(
    toy_playbook: Path, toy_site: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.sqlite"
    (toy_site / "catalog.sqlite").rename(outside)
    (toy_site / "catalog.sqlite").symlink_to(outside)
    before = outside.read_bytes()
    for command in (("plan",), ("run", "--yes")):
        result = invoke(*command, toy_playbook)
        assert result.exit_code == 1, result.output
        assert_clean(result)
        assert "resolves outside the site via a link" in result.output
    assert outside.read_bytes() == before


def _interrupt_copy_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.toyproc import Copy

    original = Copy.run
    calls: list[int] = []

    def run(self: Copy, ctx: object) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the step
        original(self, ctx)  # type: ignore[arg-type]

    monkeypatch.setattr(Copy, "run", run)


def test_ctrl_c_exits_130_and_the_same_command_resumes(
    toy_playbook: Path, toy_site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _interrupt_copy_once(monkeypatch)
    result = invoke("run", toy_playbook, "--yes")
    assert result.exit_code == 130
    assert_clean(result)
    assert "interrupted: the current step was rolled back" in result.stderr
    (run,) = status(toy_site)["runs"]
    assert run["state"] == "interrupted"
    assert {s["step_id"]: s["state"] for s in run["steps"]} == {
        "offline": "done",
        "mark": "done",
        "copy": "interrupted",
    }
    assert not (toy_site / "media" / "copy.bin").exists()
    planned = invoke("plan", toy_playbook)
    assert "An interrupted run exists: `recover run` would resume it." in planned.stdout
    assert "[ok] mark: toy.mark  [destructive]  done already" in planned.stdout
    again = invoke("run", toy_playbook)  # nothing destructive is pending: no --yes needed
    assert again.exit_code == 0, again.output
    assert f"Run {run['run_id']} resumed and finished." in again.stdout
    steps = steps_of(toy_site)
    assert steps["copy"]["state"] == "done" and steps["copy"]["attempts"] == 2
    assert steps["mark"]["attempts"] == 1


def test_resuming_a_run_started_from_a_plan(
    toy_playbook: Path, toy_site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan_file, fresh_plan = tmp_path / "plan.json", tmp_path / "fresh.json"
    assert invoke("plan", toy_playbook, "-o", plan_file).exit_code == 0
    _interrupt_copy_once(monkeypatch)
    assert invoke("run", toy_playbook, "--yes", "--plan", plan_file).exit_code == 130
    # the site changed since the plan (the run did), yet the run it started resumes...
    assert invoke("plan", toy_playbook, "-o", fresh_plan).exit_code == 0
    refused = invoke("run", toy_playbook, "--yes", "--plan", fresh_plan)
    assert refused.exit_code == 3  # ...but not from another plan
    assert "this interrupted run was started from a different plan" in refused.stderr
    resumed = invoke("run", toy_playbook, "--yes", "--plan", plan_file)
    assert resumed.exit_code == 0, resumed.output
    assert "resumed and finished" in resumed.stdout


def test_the_fingerprint_never_follows_links_nor_opens_special_files(tmp_path: Path) -> None:
    from runner.engine.fingerprint import fingerprint

    root = tmp_path / "site"
    (root / "media").mkdir(parents=True)
    (root / "media" / "a.bin").write_bytes(b"a")
    os.mkfifo(root / "media" / "pipe")
    (root / "zero").symlink_to("/dev/zero")
    (root / "loop").symlink_to(root / "loop")
    (root / "up").symlink_to(root)  # a directory link: not walked into
    prints = fingerprint(root)  # a FIFO opened or /dev/zero followed would hang here
    assert prints["media/a.bin"].startswith("sha256=")
    assert prints["media/pipe"].startswith("special=")
    assert prints["zero"] == "link=/dev/zero"
    assert prints["loop"] == f"link={root / 'loop'}"
    assert prints["up"] == f"link={root}"
    assert not any(key.startswith("up/") for key in prints)
