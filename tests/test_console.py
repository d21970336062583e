"""One console for people, one log for the record (issue 11, part 3).

Through the CLI: a live progress row under a pseudo-terminal and plain
progress lines without one; every note of a shipped playbook's run shown
once; NO_COLOR and --color; -q/-v after the subcommand. Then the pieces: the
engine's progress meter (slow loops heard, fast loops cheap) and the
terminal's text helpers.
"""

from __future__ import annotations

import os
import pty
import re
import select
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from runner.engine import progress as progress_module
from runner.engine.context import Context
from runner.engine.journal import StepRecord
from runner.engine.progress import Meter
from runner.terminal import ConsoleOptions, Terminal, compact, styled
from tests.helpers import PLAYBOOKS_DIR, ROOT, invoke, process_env, run_process, steps_of
from tests.toyproc import build_site

WAIT_PLAYBOOK = """\
version: 1
name: toy-wait
description: one step that takes a while, for the console
params:
  seconds: {{type: number, default: {seconds}}}
site:
  root: site
  catalog: catalog.sqlite
steps:
  - id: slow
    action: toy.wait
    args: {{items: 50, seconds: "{{{{ seconds }}}}"}}
"""
NOTE = "waited {seconds}s over 50 items"
WARNING = "a warning worth reading once"
#: an SGR sequence: colour or another text style (cursor moves are not styles)
STYLE = re.compile(r"\x1b\[[0-9;]*m")


def _wait_tree(tmp_path: Path, seconds: float) -> Path:
    build_site(tmp_path / "site")
    playbook = tmp_path / "wait.yaml"
    playbook.write_text(WAIT_PLAYBOOK.format(seconds=seconds), encoding="utf-8")
    return playbook


def _in_terminal(*args: object, env: dict[str, str], timeout: float = 60) -> tuple[int, str]:
    """`python -m runner ARGS` with stdin, stdout and stderr on a pseudo-terminal;
    its exit code and everything it wrote there."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.chdir(ROOT)
            os.execve(sys.executable, [sys.executable, "-m", "runner", *map(str, args)], env)
        finally:
            os._exit(127)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            continue
        try:
            data = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode("utf-8", "replace")


def _terminal_env(**extra: str) -> dict[str, str]:
    env = process_env(TERM="xterm-256color", COLUMNS="140", LINES="40", **extra)
    env.pop("NO_COLOR", None)
    env.update(extra)
    return env


def _log_text(site: Path) -> str:
    (log,) = (site / ".recover" / "logs").glob("*.log")
    return log.read_text(encoding="utf-8")


# -- through the CLI ------------------------------------------------------------------------


def test_a_step_of_a_few_seconds_shows_a_live_progress_row_on_a_terminal(
    tmp_path: Path,
) -> None:
    playbook = _wait_tree(tmp_path, 2.5)
    code, screen = _in_terminal("run", playbook, env=_terminal_env(NO_COLOR="1"))
    assert code == 0, screen
    # the row: step, phase, bar, done/total, rate, ETA
    row = re.search(r"slow: waited items\s+━+.*?(\d+)/50\s+\d+/s\s+ETA \d+:\d\d", screen)
    assert row is not None, screen
    assert 0 < int(row.group(1)) <= 50
    assert "[ok] slow: toy.wait  done" in screen
    # the live row stands for the plain lines: no "running", no progress line
    assert "step slow (toy.wait) running" not in screen
    assert "waited items: " not in screen
    assert screen.count(NOTE.format(seconds=2.5)) == 1
    assert screen.count(WARNING) == 1
    # NO_COLOR: the row moves the cursor, but nothing is coloured or styled
    assert not STYLE.search(screen), STYLE.findall(screen)[:5]
    # the log file keeps everything, with timestamps
    log = _log_text(tmp_path / "site")
    assert re.search(
        r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} INFO .*waited items: \d+/50", log, re.M
    )
    assert NOTE.format(seconds=2.5) in log and WARNING in log
    assert "DEBUG" in log and "step slow done in" in log


def test_without_a_terminal_progress_is_a_plain_line_every_two_seconds(tmp_path: Path) -> None:
    playbook = _wait_tree(tmp_path, 2.5)
    done = run_process("run", playbook, env=process_env())
    assert done.returncode == 0, done.stderr
    assert "step slow (toy.wait) running" in done.stderr
    lines = re.findall(
        r"^\d\d:\d\d:\d\d INFO +waited items: (\d+)/50 \(\d+%\) at [\d,]+/s$", done.stderr, re.M
    )
    assert len(lines) == 1, done.stderr  # 2.5 s: one line, at about 2 s
    assert "━" not in done.stderr and "\x1b" not in done.stderr + done.stdout
    assert (done.stdout + done.stderr).count(NOTE.format(seconds=2.5)) == 1


def test_colour_follows_no_color_and_the_color_option(tmp_path: Path) -> None:
    playbook = _wait_tree(tmp_path, 0)
    plain = run_process("run", playbook, env=process_env(NO_COLOR="1"))
    assert plain.returncode == 0, plain.stderr
    assert "[ok] slow: toy.wait" in plain.stdout
    assert "\x1b" not in plain.stdout + plain.stderr
    forced = run_process(
        "run", playbook, "--new-run", "--color", "always", env=process_env(NO_COLOR="1")
    )
    assert forced.returncode == 0, forced.stderr
    assert STYLE.search(forced.stdout), forced.stdout  # the flag wins over the environment
    assert "[ok]" in STYLE.sub("", forced.stdout)
    # on a terminal, colour is the default; --color never turns it off
    code, screen = _in_terminal("run", playbook, "--new-run", env=_terminal_env())
    assert code == 0 and STYLE.search(screen), screen
    code, screen = _in_terminal(
        "--color", "never", "run", playbook, "--new-run", env=_terminal_env()
    )
    assert code == 0 and "[ok] slow: toy.wait" in screen and not STYLE.search(screen), screen


def test_quiet_and_verbose_work_after_the_subcommand_too(tmp_path: Path, toy_env: None) -> None:
    playbook = _wait_tree(tmp_path, 0)
    quiet = invoke("run", playbook, "-q")
    assert quiet.exit_code == 0, quiet.output
    assert "[ok] slow: toy.wait" in quiet.stdout
    assert "INFO" not in quiet.stderr and WARNING not in quiet.stderr
    verbose = invoke("run", playbook, "--new-run", "-v")
    assert verbose.exit_code == 0, verbose.output
    assert re.search(r"DEBUG +step slow done in \d+\.\d\ds", verbose.stderr), verbose.stderr
    before = invoke("-v", "run", playbook, "--new-run")
    assert "DEBUG" in before.stderr
    normal = invoke("run", playbook, "--new-run")
    assert "INFO" in normal.stderr and "DEBUG" not in normal.stderr
    assert invoke("validate", playbook, "-q").exit_code == 0
    assert invoke("status", "--site", tmp_path / "site", "-v", "--color", "never").exit_code == 0
    assert invoke("world", "toy", tmp_path / "other", "-q").exit_code == 0
    bad = invoke("run", playbook, "--color", "sometimes")
    assert bad.exit_code == 2 and "'sometimes' is not one of" in bad.output


def test_no_note_of_a_shipped_playbook_run_is_shown_twice(tmp_path: Path) -> None:
    site = tmp_path / "keyed"
    made = invoke("world", "keyed", site, "--records", 3000, "--damage", "all")
    assert made.exit_code == 0, made.output
    result = invoke("run", PLAYBOOKS_DIR / "keyed-file-repair.yaml", "--site", site, "--yes")
    assert result.exit_code == 0, result.output
    shown = result.stdout + result.stderr
    steps = steps_of(site)
    notes = [note["text"] for step in steps.values() for note in step["notes"]]
    assert len(notes) > 10 and any(
        n["level"] == "warning" for s in steps.values() for n in s["notes"]
    )
    for text in notes:
        # as often as the notes that contain it (a note may be part of a longer one)
        assert shown.count(text) == sum(text in other for other in notes), text
    reports = [path for step in steps.values() for path in step["reports"]]
    for path in reports:
        assert shown.count(f"report written to {path}") == 1, path


# -- the engine's progress meter ------------------------------------------------------------


class Heard:
    """A progress listener that remembers what it was told."""

    def __init__(self) -> None:
        self.advanced_calls: list[tuple[str, int, int | None]] = []

    def step_started(self, step_id: str, action: str, *, dry_run: bool) -> None: ...

    def advanced(self, label: str, done: int, total: int | None) -> None:
        self.advanced_calls.append((label, done, total))

    def step_ended(self) -> None: ...


def _context(listener: Heard) -> Context:
    """A step context with only what progress needs (a dry run: no crash hook)."""
    none: Any = None
    return Context(
        site=none,
        db=none,
        media=none,
        dry_run=True,
        now=none,
        run_id="r",
        record=StepRecord("s", 0, "toy.wait"),
        confirmations=set(),
        reports=none,
        on_checkpoint=lambda ctx: None,
        claims=none,
        listener=listener,
    )


def test_a_loop_of_a_few_slow_chunks_is_heard_as_it_goes() -> None:
    heard = Heard()
    for _ in _context(heard).progress(range(6), 6, "chunks"):
        time.sleep(0.12)
    counts = [done for label, done, total in heard.advanced_calls]
    assert counts[0] == 0 and counts[-1] == 6
    assert len(set(counts)) >= 5  # nearly every chunk, not only the start and the end
    assert {label for label, _, _ in heard.advanced_calls} == {"chunks"}


def test_a_fast_loop_asks_the_clock_rarely_and_ends_full(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = 0
    real = Meter.update

    def counting(self: Meter, count: int, total: int | None, *, final: bool = False) -> int:
        nonlocal asked
        asked += 1
        return real(self, count, total, final=final)

    monkeypatch.setattr(Meter, "update", counting)
    heard = Heard()
    items = 2_000_000
    assert sum(1 for _ in _context(heard).progress(range(items), None, "fast")) == items
    assert asked < 500, asked  # about every 0.05 s, not every item
    # an unknown total shows as full once the loop is done
    assert heard.advanced_calls[-1] == ("fast", items, items)


def test_advance_replaces_the_item_count_of_its_own_loop() -> None:
    heard = Heard()
    ctx = _context(heard)
    for index in ctx.progress(range(3), None, "log bytes read"):
        time.sleep(0.11)
        ctx.advance("log bytes read", (index + 1) * 1000, 3000)
    shown = [(done, total) for _, done, total in heard.advanced_calls]
    assert shown[0] == (0, None)  # the loop's start
    assert (3000, 3000) in shown
    assert all(total == 3000 for _, total in shown[1:])  # never the loop's 1, 2, 3 items


def test_listening_is_scoped() -> None:
    heard = Heard()
    assert progress_module.current_listener() is None
    with progress_module.listening(heard):
        assert progress_module.current_listener() is heard
    assert progress_module.current_listener() is None


# -- the terminal's helpers -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "text"),
    [
        (0, "0"),
        (99_999, "99,999"),
        (123_456, "123k"),
        (12_345_678, "12.3M"),
        (4_500_000, "4.5M"),
        (1.2e9, "1.2G"),
    ],
)
def test_counts_are_compact(number: float, text: str) -> None:
    assert compact(number) == text


@pytest.mark.parametrize(
    "line",
    [
        "[ok] verify: keyed.verify  done  1.02s",
        "      WARNING: crash flag",
        "      fix: x",
        "plain",
    ],
)
def test_styling_never_changes_the_text(line: str) -> None:
    assert styled(line).plain == line


def test_what_a_block_shows_is_not_logged_on_the_console() -> None:
    terminal = Terminal(ConsoleOptions())
    assert not terminal.shows({"extra": {"console": "never"}})
    assert terminal.shows({"extra": {}})
    # without a terminal (pytest's streams), progress and "running" lines are shown
    assert terminal.shows({"extra": {"console": "plain"}}) == (not terminal.live)
