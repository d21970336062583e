"""Where the operator's output goes: one console for people, one log for the record.

Step blocks (runner.console's text) go to stdout; log lines and progress go to
stderr. Without a terminal both are plain lines, and progress is the log's own
line every couple of seconds (runner.engine.progress). On a terminal, rich draws
a live row for the running step (phase, bar, items, rate, ETA) once it has run
about a second, and prints the log lines above it; the row disappears when the
step's block is printed. Notes, warnings and reports are shown only in the
step's block (their log records carry `console="never"`); the per-run log file
(runner.engine.run) keeps every record at DEBUG.

Colour: `--color always|never` decides; with `auto`, a terminal gets colour
unless NO_COLOR is set to anything but the empty string. rich is imported only
when something is drawn with it (colour or a live row), so commands that print
plain text, and `recover --help`, never load it.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

import click

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID
    from rich.text import Text

COLOR_CHOICES = ("auto", "always", "never")
#: a step's live row appears once the step has run this long (seconds)
SHOW_AFTER = 1.0
LEVELS = {-1: "WARNING", 0: "INFO"}


@dataclass
class ConsoleOptions:
    """-q/-v and --color, wherever on the command line they were given."""

    verbosity: int = 0  # -1 quiet, 0 normal, 1+ verbose
    color: str = "auto"

    @property
    def level(self) -> str:
        return LEVELS.get(self.verbosity, "DEBUG")


def is_terminal(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty is not None and isatty()) and os.environ.get("TERM") != "dumb"
    except ValueError:  # a closed stream
        return False


def wants_color(choice: str, stream: object) -> bool:
    """--color always/never wins; auto means a terminal, unless NO_COLOR is set."""
    if choice == "always":
        return True
    if choice == "never" or os.environ.get("NO_COLOR", ""):
        return False
    return is_terminal(stream)


class Terminal:
    """The console of one invocation; built once the options are known."""

    def __init__(self, options: ConsoleOptions) -> None:
        self.options = options
        self.color = wants_color(options.color, sys.stdout)
        self.err_color = wants_color(options.color, sys.stderr)
        #: a live progress row: stderr is a terminal and -q was not given
        self.live = options.verbosity >= 0 and is_terminal(sys.stderr)
        self._steps: LiveSteps | None = None
        self._out: Console | None = None
        self._err: Console | None = None

    # -- stdout: what the command reports ---------------------------------------------
    def lines(self, lines: Iterable[str]) -> None:
        """A block of output lines (a step, a plan, a summary), coloured if wanted."""
        if not self.color:
            for line in lines:
                click.echo(line)
            return
        console = self._out_console()
        for line in lines:
            console.print(styled(line), soft_wrap=True)

    # -- stderr: log lines ---------------------------------------------------------------
    def shows(self, record: dict[str, Any]) -> bool:
        """The console sink's filter: what a block shows is not logged twice, and
        what the live row shows is not logged on a terminal."""
        where = record["extra"].get("console")
        return where != "never" and not (where == "plain" and self.live)

    def log(self, message: Any) -> None:
        """loguru sink: `HH:MM:SS LEVEL message`, above the live row if there is one."""
        record = message.record
        stamp = record["time"].strftime("%H:%M:%S")
        level = record["level"].name
        # str(message) is the record as formatted ("{message}"), with a traceback if any
        text = f"{stamp} {level:<7} {str(message).rstrip()}"
        if not self.err_color and not self.live:
            stream: TextIO = sys.stderr
            stream.write(text + "\n")
            stream.flush()
            return
        from rich.text import Text

        line = Text(text)
        line.stylize("dim", 0, len(stamp))
        line.stylize(LEVEL_STYLES.get(level, ""), len(stamp) + 1, len(stamp) + 1 + len(level))
        self._err_console().print(line, soft_wrap=True)

    # -- progress ------------------------------------------------------------------------
    def listener(self) -> LiveSteps | None:
        """What draws the live row, or None when progress is the log's lines."""
        if not self.live:
            return None
        if self._steps is None:
            self._steps = LiveSteps(self._err_console())
        return self._steps

    # -- rich consoles, made on first use -----------------------------------------------
    def _out_console(self) -> Console:
        if self._out is None:
            self._out = _console(sys.stdout, self.color)
        return self._out

    def _err_console(self) -> Console:
        if self._err is None:
            self._err = _console(sys.stderr, self.err_color)
        return self._err


def _console(stream: TextIO, color: bool) -> Console:
    from rich.console import Console

    return Console(
        file=stream,
        force_terminal=True if color else None,
        color_system="auto" if color else None,
        no_color=not color,
        highlight=False,
        markup=False,
        emoji=False,
        soft_wrap=True,
    )


LEVEL_STYLES = {
    "DEBUG": "dim",
    "INFO": "green",
    "SUCCESS": "green",
    "WARNING": "yellow",
    "ERROR": "bold red",
    "CRITICAL": "bold red",
}
MARK_STYLES = {
    "[ok]": "green",
    "[--]": "dim",
    "[!!]": "bold red",
    "[NO]": "bold red",
    "[..]": "cyan",
    "[>>]": "cyan",
}
#: a line of a step block that starts (after its indent) with one of these
LINE_STYLES = (
    ("FAIL", "red"),
    ("fix:", "cyan"),
    ("DATA LOSS", "bold red"),
    ("WARNING:", "yellow"),
    ("error:", "bold red"),
    ("Verdict:", "bold"),
)


def styled(line: str) -> Text:
    """A line of runner.console's text with its marks coloured; the text itself
    is unchanged, so a coloured block reads exactly like a plain one."""
    from rich.text import Text

    text = Text(line)
    mark = line[:4]
    if mark in MARK_STYLES:
        text.stylize(MARK_STYLES[mark], 0, 4)
        return text
    body = line.lstrip()
    for start, style in LINE_STYLES:
        if body.startswith(start):
            text.stylize(style, len(line) - len(body))
            break
    return text


class LiveSteps:
    """The live row of the running step: rich's Progress, one task per phase.

    It draws nothing until the step has run SHOW_AFTER seconds, so quick steps
    do not flicker, and it is transient: the step's block replaces it.
    """

    def __init__(self, console: Console) -> None:
        self.console = console
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._name = ""
        self._label = ""
        self._since = 0.0

    def step_started(self, step_id: str, action: str, *, dry_run: bool) -> None:
        self.step_ended()
        self._name = f"{step_id} (plan)" if dry_run else step_id
        self._label = ""
        self._since = time.monotonic()
        progress = _make_progress(self)
        self._task = progress.add_task(f"{self._name} ({action})", total=None)
        progress.start()
        self._progress = progress

    def advanced(self, label: str, done: int, total: int | None) -> None:
        progress, task = self._progress, self._task
        if progress is None or task is None:
            return
        if label != self._label:  # a new phase: its own count, rate and ETA
            self._label = label
            progress.remove_task(task)
            self._task = progress.add_task(f"{self._name}: {label}", total=total, completed=done)
        else:
            progress.update(task, completed=done, total=total)

    def step_ended(self) -> None:
        if self._progress is not None:
            self._progress.stop()
        self._progress = self._task = None

    @property
    def phase(self) -> str:
        return self._label

    def visible(self) -> bool:
        return time.monotonic() - self._since >= SHOW_AFTER

    def elapsed(self) -> float:
        return time.monotonic() - self._since


def compact(number: float) -> str:
    """A count short enough for a progress row: 12,345, 123k, 4.5M, 1.2G."""
    if number < 100_000:
        return f"{number:,.0f}"
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if number >= size:
            value = number / size
            return f"{value:.1f}{suffix}" if value < 100 else f"{value:,.0f}{suffix}"
    return f"{number:,.0f}"


def _make_progress(owner: LiveSteps) -> Progress:
    """rich's Progress with the step's columns, silent while the step is young."""
    from rich.console import Group, RenderableType
    from rich.progress import (
        BarColumn,
        Progress,
        ProgressColumn,
        SpinnerColumn,
        Task,
        TextColumn,
    )
    from rich.text import Text

    class Counts(ProgressColumn):
        """done/total, or done alone when the total is unknown."""

        def render(self, task: Task) -> Text:
            if not owner.phase:
                return Text("")  # the step reports no progress (yet): no count to show
            total = f"/{compact(task.total)}" if task.total is not None else ""
            return Text(f"{compact(task.completed)}{total}", style="progress.download")

    class Rate(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{compact(speed)}/s" if speed else "", style="progress.data.speed")

    class Eta(ProgressColumn):
        """The phase's time left, when its total is known."""

        def render(self, task: Task) -> Text:
            left = task.time_remaining
            if task.total is None or left is None or task.finished:
                return Text("")
            seconds = int(left)
            return Text(f"ETA {seconds // 60}:{seconds % 60:02d}", style="progress.remaining")

    class Elapsed(ProgressColumn):
        """The step's time so far (a phase's own is what the ETA is about)."""

        def render(self, task: Task) -> Text:
            seconds = int(owner.elapsed())
            return Text(f"{seconds // 60}:{seconds % 60:02d}", style="progress.elapsed")

    class StepProgress(Progress):
        def get_renderable(self) -> RenderableType:
            return super().get_renderable() if owner.visible() else Group()

    return StepProgress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        Counts(),
        Rate(),
        Eta(),
        Elapsed(),
        console=owner.console,
        transient=True,
        refresh_per_second=8,
        redirect_stdout=False,
        redirect_stderr=False,
    )
