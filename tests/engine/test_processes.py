"""What needs real processes: kill -9 mid-step and resume, the site lock held by
another process, SIGTERM, and the interactive confirmation on a terminal."""

from __future__ import annotations

import os
import pty
import select
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import (
    ROOT,
    SHIPPED_TOY_TEMPLATE,
    TOY_PLAYBOOK,
    assert_clean,
    catalog_rows,
    invoke,
    process_env,
    run_process,
    snapshot,
    status,
    steps_of,
)
from tests.toyproc import build_site


def _toy_tree(base: Path, items: int = 100) -> tuple[Path, Path]:
    """A toy site with its report template in the site (real processes do not see
    the test's patched shipped templates), and the playbook beside it."""
    site = build_site(base / "site", items)
    (site / "templates" / "toy").mkdir(parents=True)
    (site / "templates" / "toy" / "items.txt.j2").write_text(SHIPPED_TOY_TEMPLATE)
    playbook = base / "toy.yaml"
    playbook.write_text(TOY_PLAYBOOK, encoding="utf-8")
    return site, playbook


def _without_catalog(snap: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in snap.items() if k != "catalog.sqlite"}


# -- kill -9 and resume ---------------------------------------------------------------


@pytest.mark.parametrize("crash_at", [1, 35, 100])
def test_kill_9_then_rerun_ends_like_an_uninterrupted_run(
    tmp_path: Path, toy_env: None, crash_at: int
) -> None:
    ref_site, ref_playbook = _toy_tree(tmp_path / "reference")
    assert invoke("run", ref_playbook, "--yes").exit_code == 0
    site, playbook = _toy_tree(tmp_path / "crashed")

    killed = run_process(
        "run", playbook, "--yes", env=process_env(RECOVER_CRASH_AT=f"mark:{crash_at}")
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    text = invoke("status", "--site", site).stdout
    assert "interrupted (run it again to resume)" in text
    assert "Site is not locked." in text  # the kernel dropped the flock of the dead run
    after_crash = steps_of(site)["mark"]
    assert after_crash["state"] == "running"
    committed = after_crash["state_data"].get("done", 0)
    assert committed == crash_at // 10 * 10
    # the catalog holds exactly what the journal says was committed
    items = catalog_rows(site / "catalog.sqlite")["items"]
    assert sum(1 for row in items if row[1] == "X") + 5 * (committed > 0) == committed
    assert not (site / "reports").exists()

    resumed = invoke("run", playbook, "--yes")
    assert resumed.exit_code == 0, resumed.output
    assert "resumed and finished" in resumed.stdout

    assert catalog_rows(site / "catalog.sqlite") == catalog_rows(ref_site / "catalog.sqlite")
    assert _without_catalog(snapshot(site, state=False)) == _without_catalog(
        snapshot(ref_site, state=False)
    )
    ref_steps, steps = steps_of(ref_site), steps_of(site)
    for step_id in ("offline", "mark", "copy"):
        for key in ("state", "changes", "loss", "loss_examples", "outputs", "reports", "media"):
            assert steps[step_id][key] == ref_steps[step_id][key], (step_id, key)
    assert steps["mark"]["attempts"] == 2 and steps["offline"]["attempts"] == 1
    assert steps["mark"]["started_at"] == ref_steps["mark"]["started_at"]
    (run,) = status(site)["runs"]
    assert run["state"] == "done"
    assert invoke("run", playbook, "--yes").stdout.endswith(
        "nothing to do (use --new-run to run it again).\n"
    )


def test_killed_twice_still_ends_the_same(tmp_path: Path, toy_env: None) -> None:
    ref_site, ref_playbook = _toy_tree(tmp_path / "reference")
    assert invoke("run", ref_playbook, "--yes", "--param", "batch=3").exit_code == 0
    site, playbook = _toy_tree(tmp_path / "crashed")
    for crash_at in (17, 40):  # items counted per process: the second run resumes at 15
        killed = run_process(
            "run",
            playbook,
            "--yes",
            "--param",
            "batch=3",
            env=process_env(RECOVER_CRASH_AT=f"mark:{crash_at}"),
        )
        assert killed.returncode == -signal.SIGKILL
    assert steps_of(site)["mark"]["state_data"] == {"done": 15 + 39}
    assert invoke("run", playbook, "--yes", "--param", "batch=3").exit_code == 0
    assert catalog_rows(site / "catalog.sqlite") == catalog_rows(ref_site / "catalog.sqlite")
    assert steps_of(site)["mark"]["loss"] == {"items": 5}
    assert steps_of(site)["mark"]["attempts"] == 3


def test_a_crash_point_never_fires_in_a_plan(tmp_path: Path, toy_env: None) -> None:
    site, playbook = _toy_tree(tmp_path)
    before = snapshot(site)
    done = run_process("plan", playbook, env=process_env(RECOVER_CRASH_AT="mark:1"))
    assert done.returncode == 0, done.stderr
    assert "[ok] mark: toy.mark  [destructive]  would run" in done.stdout
    assert snapshot(site) == before


def test_numbered_crash_points_are_listed_by_a_run_never_a_plan_and_kill_where_told(
    tmp_path: Path, toy_env: None
) -> None:
    """RECOVER_CRASH_POINTS lists a real run's points; RECOVER_CRASH_AT=point:N
    kills at the Nth: at `commit mark after` the step is done, the next not begun."""
    _, playbook = _toy_tree(tmp_path / "a")
    tally = tmp_path / "points.txt"
    planned = run_process("plan", playbook, env=process_env(RECOVER_CRASH_POINTS=str(tally)))
    assert planned.returncode == 0, planned.stderr
    assert tally.read_text() == ""  # a dry run passes no point
    done = run_process("run", playbook, "--yes", env=process_env(RECOVER_CRASH_POINTS=str(tally)))
    assert done.returncode == 0, done.stderr
    labels = tally.read_text().splitlines()
    assert labels.count("progress mark items") == 100
    assert "checkpoint mark before" in labels
    assert "media write media/copy.bin after rename" in labels
    commit = labels.index("commit mark after") + 1
    other, other_playbook = _toy_tree(tmp_path / "b")
    env = process_env(RECOVER_CRASH_AT=f"point:{commit}")
    killed = run_process("run", other_playbook, "--yes", env=env)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    steps = steps_of(other)
    assert steps["mark"]["state"] == "done" and "copy" not in steps  # never begun


# -- the site lock ----------------------------------------------------------------------

HOLDER = """\
import sys
from pathlib import Path
from runner.engine.lock import SiteLock
with SiteLock(Path(sys.argv[1]), "recover run toy-run (test holder)"):
    print("locked", flush=True)
    sys.stdin.read()
"""


def test_a_second_run_is_refused_while_another_process_holds_the_site(
    toy_playbook: Path, toy_site: Path
) -> None:
    assert invoke("run", toy_playbook, "--yes").exit_code == 0
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(toy_site / ".recover")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=process_env(),
        cwd=ROOT,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        before = snapshot(toy_site)
        result = invoke("run", toy_playbook, "--yes", "--new-run")
        assert result.exit_code == 3
        assert_clean(result)
        assert f"the site is locked by another run: pid {holder.pid} on " in result.stderr
        assert "(recover run toy-run (test holder))" in result.stderr
        assert "fix: wait for that run to finish" in result.stderr
        planned = invoke("plan", toy_playbook)
        assert planned.exit_code == 3
        assert f"a run is in progress on this site: pid {holder.pid}" in planned.stderr
        shown = invoke("status", "--site", toy_site)
        assert shown.exit_code == 0
        assert shown.stdout.startswith(f"Site locked by: pid {holder.pid} on ")
        assert status(toy_site)["locked_by"].startswith(f"pid {holder.pid} on ")
        assert snapshot(toy_site) == before
    finally:
        holder.kill()  # kill -9: the kernel releases the flock, no stale lock remains
        holder.wait(timeout=10)
    assert status(toy_site)["locked_by"] is None
    result = invoke("run", toy_playbook, "--yes", "--new-run")
    assert result.exit_code == 0, result.output
    assert len(status(toy_site)["runs"]) == 2


def test_lock_in_process(tmp_path: Path) -> None:
    from runner.engine.lock import SiteLock, holder_of
    from runner.errors import SiteLocked

    state = tmp_path / ".recover"
    assert holder_of(state) is None
    with SiteLock(state, "first"):
        held = holder_of(state)
        assert held is not None and f"pid {os.getpid()}" in held and "(first)" in held
        with pytest.raises(SiteLocked) as info, SiteLock(state, "second"):
            pass
        assert info.value.exit_code == 3 and "(first)" in info.value.message
    assert holder_of(state) is None
    with SiteLock(state, "third"):  # released, so it can be taken again
        assert "(third)" in (holder_of(state) or "")


def test_a_plan_reads_under_a_shared_lock(tmp_path: Path) -> None:
    """Plans read side by side; a run cannot start under one (and is told why), and a
    plan cannot start under a run: a plan never sees a half-changed site."""
    from runner.engine.lock import SiteLock, reading
    from runner.errors import SiteLocked

    state = tmp_path / ".recover"
    with reading(state):  # a site never run: no lock file, none created
        pass
    assert not state.exists()
    with SiteLock(state, "first"):
        pass
    with reading(state), reading(state):
        with pytest.raises(SiteLocked) as info, SiteLock(state, "run"):
            pass
        assert "a `recover plan` reading the site" in info.value.message
    with SiteLock(state, "run"):
        with pytest.raises(SiteLocked) as info, reading(state):
            pass
        assert "a run is in progress on this site: pid" in info.value.message
        assert "(run)" in info.value.message


# -- SIGTERM ----------------------------------------------------------------------------------


def test_sigterm_rolls_back_the_step_and_a_rerun_resumes(tmp_path: Path, toy_env: None) -> None:
    site, playbook = _toy_tree(tmp_path, items=200_000)
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner", "run", str(playbook), "--yes", "--param", "batch=2000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=process_env(),
        cwd=ROOT,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if "step mark (toy.mark) running" in line:
            break
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("the step finished before SIGTERM arrived (machine too fast)")
    assert proc.returncode == 130, err
    assert "interrupted: the current step was rolled back" in err
    assert "Traceback" not in err
    assert steps_of(site)["mark"]["state"] == "interrupted"
    # (whether the journal agrees with the catalog depends on where the signal lands:
    # see test_an_interrupt_right_after_a_checkpoint_commit_keeps_the_journal_exact)
    resumed = invoke("run", playbook, "--yes", "--param", "batch=2000")
    assert resumed.exit_code == 0, resumed.output
    items = catalog_rows(site / "catalog.sqlite")["items"]
    assert len(items) == 200_000 - 5 and all(row[1] == "X" for row in items)
    assert steps_of(site)["mark"]["loss"] == {"items": 5}


class _InterruptAfterCommit:
    """Wraps the engine's SQLite connections: once a COMMIT leaves `marked` items
    marked in the catalog, raise KeyboardInterrupt as the COMMIT returns. That is
    where Python delivers a SIGTERM/Ctrl-C received during the COMMIT's fsync
    (the longest wait of a checkpoint, so the likeliest moment for a signal)."""

    def __init__(self, real: sqlite3.Connection, trigger: list[int]) -> None:
        self._real, self._trigger = real, trigger

    def __getattr__(self, name: str) -> object:
        return getattr(self._real, name)

    def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
        cursor = self._real.execute(sql, *args)
        if sql.strip().upper() == "COMMIT" and self._trigger:
            try:
                (marked,) = self._real.execute(
                    "SELECT count(*) FROM items WHERE state = 'X'"
                ).fetchone()
            except sqlite3.Error:
                return cursor  # not a connection with the catalog attached
            if marked == self._trigger[0]:
                self._trigger.clear()
                raise KeyboardInterrupt
        return cursor


def test_an_interrupt_right_after_a_checkpoint_commit_keeps_the_journal_exact(
    toy_playbook: Path, toy_site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref_site, ref_playbook = _toy_tree(tmp_path / "reference")
    assert invoke("run", ref_playbook, "--yes").exit_code == 0
    from runner.engine import journal

    connect = journal.connect
    trigger = [25]  # three batches of 10: items 6-30 marked, 1-5 deleted
    monkeypatch.setattr(journal, "connect", lambda p: _InterruptAfterCommit(connect(p), trigger))
    interrupted = invoke("run", toy_playbook, "--yes")
    assert interrupted.exit_code == 130, interrupted.output
    assert trigger == []
    monkeypatch.setattr(journal, "connect", connect)
    mark = steps_of(toy_site)["mark"]
    items = catalog_rows(toy_site / "catalog.sqlite")["items"]
    assert sum(1 for row in items if row[1] == "X") + 5 == 30  # three batches committed
    assert mark["state_data"] == {"done": 30}
    assert invoke("run", toy_playbook, "--yes").exit_code == 0
    for key in ("changes", "loss", "outputs"):
        assert steps_of(toy_site)["mark"][key] == steps_of(ref_site)["mark"][key], key


# -- confirmation on a terminal -----------------------------------------------------------------


def _run_on_a_tty(playbook: Path, answer: bytes) -> tuple[int, str]:
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner", "run", str(playbook)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=process_env(),
        cwd=ROOT,
        close_fds=True,
    )
    os.close(slave)
    output = b""
    answered = False
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
            if not answered and b"Proceed?" in output:
                os.write(master, answer)
                answered = True
            if proc.poll() is not None and not ready:
                break
        code = proc.wait(timeout=30)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return code, output.decode(errors="replace").replace("\r\n", "\n")


def test_interactive_no_changes_nothing(tmp_path: Path, toy_env: None) -> None:
    site, playbook = _toy_tree(tmp_path)
    before = snapshot(site)
    code, output = _run_on_a_tty(playbook, b"n\n")
    assert code == 3, output
    assert "Plan for toy-run" in output and "DATA LOSS: 5 items" in output
    assert "Steps mark can lose data as shown above. Proceed? [y/N]" in output
    assert "not confirmed; nothing was changed" in output
    assert snapshot(site) == before


def test_interactive_yes_runs(tmp_path: Path, toy_env: None) -> None:
    site, playbook = _toy_tree(tmp_path)
    code, output = _run_on_a_tty(playbook, b"y\n")
    assert code == 0, output
    assert "finished" in output
    assert steps_of(site)["mark"]["state"] == "done"
