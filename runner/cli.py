"""The `recover` command line: thin click commands over runner's API.

Every command returns through one error handler (RecoverGroup.invoke): expected
errors print a plain message and exit with their code; Ctrl-C exits 130;
anything else is a bug, logged with its traceback to a file the user can
attach to a report.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import glob
import json
import os
import shlex
import signal
import sqlite3
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from errno import EDQUOT, ENAMETOOLONG, ENOSPC, EROFS
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from runner.contract import ProcedureLoadError, Registry
from runner.errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    PlaybookError,
    RecoverError,
    SiteError,
    StalePlan,
    UsageError,
)

# Start-up time: each command imports what it needs when it runs (the engine,
# loguru, jinja, jsonschema, the procedures), so `--help` starts fast.
if TYPE_CHECKING:
    from runner.contract import DemoCase
    from runner.engine.plan import PlanResult
    from runner.engine.planfile import SavedPlan
    from runner.engine.run import RunResult
    from runner.engine.session import Request, StepOutcome
    from runner.playbook.diagnostics import Diagnostic
    from runner.playbook.model import Playbook
    from runner.terminal import ConsoleOptions, Terminal

CommandT = TypeVar("CommandT", bound=click.Command)
EXIT_CODES_HELP = """Exit codes: 0 success; 1 invalid playbook, failed precondition, failed
step or bad media; 2 usage error; 3 refused by a safety gate (confirmation
missing, loss beyond what the playbook allows, stale plan, site locked);
130 interrupted (run the same command again to resume)."""


class RecoverGroup(click.Group):
    """Maps errors to messages and exit codes for every subcommand."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PlaybookError as exc:
            for diagnostic in exc.diagnostics:
                click.echo(getattr(diagnostic, "render", lambda d=diagnostic: str(d))(), err=True)
            click.echo(f"error: {exc.message}", err=True)
            ctx.exit(exc.exit_code)
        except RecoverError as exc:
            click.echo(f"error: {exc.render()}", err=True)
            ctx.exit(exc.exit_code)
        except ProcedureLoadError as exc:  # a procedure's code, imported on first use
            click.echo(f"error: {exc}\n  fix: {exc.fix}", err=True)
            ctx.exit(EXIT_FAILED)
        except (KeyboardInterrupt, click.Abort):
            click.echo(
                "\ninterrupted: the current step was rolled back; run the same command "
                "again to resume",
                err=True,
            )
            ctx.exit(EXIT_INTERRUPTED)
        except (click.ClickException, click.exceptions.Exit):
            raise
        except (OSError, sqlite3.Error) as exc:
            environment = _environment_problem(exc)
            if environment is None:
                raise
            click.echo(f"error: {environment.render()}", err=True)
            ctx.exit(environment.exit_code)
        except Exception as exc:  # a bug: keep the details for a bug report
            import tempfile
            import traceback

            crash = Path(tempfile.gettempdir()) / (
                f"recover-crash-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}.log"
            )
            crash.write_text(traceback.format_exc(), encoding="utf-8")
            click.echo(
                f"internal error: {type(exc).__name__}: {exc}\n  details for a bug report: {crash}",
                err=True,
            )
            ctx.exit(EXIT_FAILED)


def _environment_problem(exc: OSError | sqlite3.Error) -> RecoverError | None:
    """A full disk or a read-only file system, wherever it struck: not a bug,
    and fixed outside the runner. The step's transaction was rolled back, its
    media writes are repeatable, so the same command run again resumes."""
    where = f" at {exc.filename}" if isinstance(exc, OSError) and exc.filename else ""
    name = getattr(exc, "sqlite_errorname", "")
    errno = exc.errno if isinstance(exc, OSError) else None
    if errno in (ENOSPC, EDQUOT) or name == "SQLITE_FULL":
        return RecoverError(
            f"no space left on device{where}",
            fix="free space and run the same command again; it resumes where it stopped",
        )
    if errno == ENAMETOOLONG:
        return RecoverError(
            f"a file name is too long for the file system{where}",
            fix="give shorter names in the playbook's paths and params (at most 255 bytes a name)",
        )
    if errno == EROFS or name.startswith("SQLITE_READONLY"):
        return RecoverError(
            f"the site is on a read-only file system{where}",
            fix="remount it read-write (or run where it is writable) and run again",
        )
    return None


# -- console options: -v/-q/--color before or after the subcommand ---------------------------


def _console_settings(ctx: click.Context) -> ConsoleOptions:
    from runner.terminal import ConsoleOptions

    meta = ctx.find_root().meta
    if "recover.console" not in meta:
        meta["recover.console"] = ConsoleOptions()
    options: ConsoleOptions = meta["recover.console"]
    return options


def _apply_console(ctx: click.Context) -> None:
    """(Re)build the invocation's terminal and point the log at it; called again
    when a subcommand's own -v/-q/--color change what the group's said."""
    from runner import logs
    from runner.terminal import Terminal

    terminal = Terminal(_console_settings(ctx))
    ctx.find_root().meta["recover.terminal"] = terminal
    logs.setup(terminal)


def _reapply_console(ctx: click.Context) -> None:
    """After -v/-q/--color: rebuild the terminal if one is set up already (the
    option came after the subcommand); else the settings wait for it, so that a
    command that logs nothing (validate -q) still imports no loguru."""
    if "recover.terminal" in ctx.find_root().meta:
        _apply_console(ctx)


def _set_verbose(ctx: click.Context, param: click.Parameter, value: int) -> None:
    if value:
        _console_settings(ctx).verbosity = value
        _reapply_console(ctx)


def _set_quiet(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        _console_settings(ctx).verbosity = -1
        _reapply_console(ctx)


def _set_color(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        _console_settings(ctx).color = value
        _reapply_console(ctx)


_CONSOLE_OPTIONS = (
    click.Option(
        ["-v", "--verbose"],
        count=True,
        expose_value=False,
        callback=_set_verbose,
        help="Debug log lines on stderr too.",
    ),
    click.Option(
        ["-q", "--quiet"],
        is_flag=True,
        expose_value=False,
        callback=_set_quiet,
        help="Only warnings and errors on stderr; no progress display.",
    ),
    click.Option(
        ["--color"],
        type=click.Choice(["auto", "always", "never"]),
        expose_value=False,
        callback=_set_color,
        help="Colour the output: auto (on a terminal, unless NO_COLOR is set), always, never.",
    ),
)


def _console_options(command: CommandT) -> CommandT:
    """Give a command -v/-q/--color of its own (accepted after the subcommand too)."""
    names = {param.name for param in command.params}
    command.params.extend(opt for opt in _CONSOLE_OPTIONS if opt.name not in names)
    return command


def _terminal() -> Terminal:
    ctx = click.get_current_context()
    meta = ctx.find_root().meta
    if "recover.terminal" not in meta:
        _apply_console(ctx)
    terminal: Terminal = meta["recover.terminal"]
    return terminal


@contextlib.contextmanager
def _progress_shown() -> Iterator[None]:
    """Steps run inside report their progress to the terminal's live row, if any."""
    from runner.engine.progress import listening

    with listening(_terminal().listener()):
        yield


@_console_options
@click.group(
    cls=RecoverGroup,
    epilog=EXIT_CODES_HELP,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    help="Show the version and exit.",
    callback=lambda ctx, _param, value: _show_version(ctx) if value else None,
)
def cli() -> None:
    """Run declarative recovery playbooks against catalogs and media.

    \b
    Typical session:
      recover validate playbooks/archive-volume-recovery.yaml
      recover plan playbooks/archive-volume-recovery.yaml --site SITE -o plan.json
      recover show plan.json
      recover run --plan plan.json
      recover status --site SITE
    """
    ctx = click.get_current_context()
    if ctx.invoked_subcommand in _QUIET_COMMANDS:
        return  # they log nothing: loguru stays unimported (start-up time)
    _apply_console(ctx)


#: commands that never log (no engine runs): they need no log set-up
_QUIET_COMMANDS = frozenset({"validate", "schema", "playbooks", "actions", "show"})


def _show_version(ctx: click.Context) -> None:
    """What click's version option prints, with the version looked up only when asked."""
    from runner import __version__

    click.echo(f"recover, version {__version__}")
    ctx.exit()


def _registry() -> Registry:
    """The invocation's registry, built on first use (not for `--help` or
    `status`) and kept on the click context; its load warnings go to stderr
    when a procedure fails to load."""
    from runner.procedures import load_registry

    ctx = click.get_current_context()
    root = ctx.find_root()
    if not isinstance(root.obj, Registry):
        root.obj = load_registry(warn=functools.partial(click.echo, err=True))
    return root.obj


def _request(
    playbook: Path,
    site: Path | None,
    params: tuple[str, ...],
    confirms: tuple[str, ...],
    params_files: tuple[Path, ...] = (),
    steps: tuple[str | None, str | None, str | None] = (None, None, None),
) -> Request:
    """The validated playbook bound to its site, parameter values (--params-file
    files in order, then --param) and step selection (plan, run)."""
    from runner.engine.request import make_request
    from runner.engine.selection import select_steps
    from runner.playbook.validate import load_playbook

    registry = _registry()
    loaded = load_playbook(playbook, registry)
    return make_request(
        loaded,
        site,
        _params(params),
        confirms,
        registry=registry,
        typed=_params_from_files(loaded, params_files),
        selection=select_steps(loaded, *steps),
    )


def _params(values: tuple[str, ...]) -> dict[str, str]:
    """NAME=VALUE texts by name; NAME=@FILE reads the value from FILE (its last
    line break dropped), NAME=@@TEXT is the text @TEXT."""
    result: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(
                f"--param {item!r} is not NAME=VALUE",
                fix="write --param NAME=VALUE, with NAME from the playbook's params: section",
            )
        if value.startswith("@@"):
            value = value[1:]
        elif value.startswith("@"):
            value = _value_file(name.strip(), Path(value[1:]))
        result[name.strip()] = value
    return result


def _value_file(name: str, path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"--param {name}=@{path}: cannot read {path}: {getattr(exc, 'strerror', None) or exc}",
            fix=f"check the path, or write the value itself: --param {name}=VALUE "
            "(a value starting with @ is written @@...)",
        ) from exc
    return text[:-2] if text.endswith("\r\n") else text.removesuffix("\n")


def _params_from_files(playbook: Playbook, files: tuple[Path, ...]) -> dict[str, Any]:
    """Typed values from YAML or JSON mapping files; a later file wins over an earlier."""
    from runner.playbook.model import check_typed
    from runner.playbook.yamlpos import YamlSyntaxError, load_positioned, plain

    values: dict[str, Any] = {}
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(
                f"--params-file {path}: cannot read it: {getattr(exc, 'strerror', None) or exc}",
                fix="check the path",
            ) from exc
        try:
            loaded, problems = load_positioned(text) if text.strip() else ({}, [])
        except YamlSyntaxError as exc:
            problems, loaded = [exc.problem], None
        for problem in problems[:1]:  # e.g. a name given twice
            raise UsageError(
                f"--params-file {path}:{problem.mark.line}:{problem.mark.col}: {problem.message}",
                fix=problem.fix
                or "write the file as a YAML (or JSON) mapping of param names to values",
            )
        data = plain(loaded)
        if not isinstance(data, dict):
            raise UsageError(
                f"--params-file {path}: expected a mapping of param names to values, "
                f"got {type(data).__name__}",
                fix='write it as `name: value` lines (YAML) or {"name": value} (JSON)',
            )
        for name, value in data.items():
            source = f"--params-file {path}: param"
            param = playbook.param_named(str(name), source)
            values[param.name] = check_typed(param, value, source)
    return values


_playbook_arg = click.argument("playbook", type=click.Path(path_type=Path, dir_okay=False))
_site_opt = click.option(
    "--site",
    type=click.Path(path_type=Path, file_okay=False),
    help="Site directory (default: the playbook's site.root).",
)
_param_opt = click.option(
    "--param",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="Override a playbook param (repeatable; wins over --params-file). NAME=@FILE "
    "reads the value from FILE (its last line break dropped); NAME=@@TEXT gives @TEXT.",
)
_params_file_opt = click.option(
    "--params-file",
    "params_files",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE",
    help="Param values from a YAML or JSON mapping (repeatable; a later file wins).",
)
_start_at_opt = click.option(
    "--start-at", metavar="STEP", help="Run from this step on (earlier steps are left out)."
)
_only_opt = click.option("--only", metavar="STEP[,STEP]", help="Run only these steps.")
_skip_opt = click.option("--skip", metavar="STEP[,STEP]", help="Leave these steps out.")
_list_steps_opt = click.option(
    "--list-steps",
    is_flag=True,
    help="List the steps (id, action, destructive, condition; with --site their journal "
    "state) and exit.",
)
_confirm_opt = click.option(
    "--confirm",
    "confirms",
    multiple=True,
    metavar="KEY",
    help="Grant an extra confirmation a step asks for, e.g. wide_loss_window (repeatable).",
)


@_console_options
@cli.command()
@click.argument("playbooks", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json", "sarif", "github"]),
    default="text",
    show_default=True,
    help="text for people; json; sarif (SARIF 2.1.0, for code scanning); "
    "github (workflow annotations).",
)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option("--strict", is_flag=True, help="Fail on warnings too (exit 1).")
def validate(playbooks: tuple[Path, ...], output_format: str, as_json: bool, strict: bool) -> None:
    """Check playbooks without touching any site.

    Reports every problem at once as FILE:LINE:COL: SEVERITY RULE: message
    [json.path], with a fix. PLAYBOOKS are files, directories (every *.yaml
    and *.yml under them) or glob patterns ('playbooks/**/*.yaml'). Errors
    exit 1; warnings (a valid but risky playbook) exit 0 unless --strict.

    \b
    Examples:
      recover validate playbooks/*.yaml
      recover validate playbooks/ --strict --format sarif > recover.sarif
    """
    from runner.playbook.diagnostics import github_annotation, to_sarif
    from runner.playbook.validate import check_playbook

    output_format = "json" if as_json else output_format
    registry = _registry()
    problems: list[Diagnostic] = []
    for path in _playbook_files(playbooks):
        _, found = check_playbook(path, registry)
        problems += found
        if output_format == "text":
            for diagnostic in found:
                click.echo(diagnostic.render())
            if not any(d.severity == "error" for d in found):
                warned = len(found)
                click.echo(f"{path}: ok" + (f" ({warned} warning(s))" if warned else ""))
        elif output_format == "github":
            for diagnostic in found:
                click.echo(github_annotation(diagnostic))
    if output_format == "json":
        click.echo(json.dumps([d.as_dict() for d in problems], indent=2))
    elif output_format == "sarif":
        from runner import __version__  # only SARIF names the tool's version

        click.echo(json.dumps(to_sarif(problems, __version__, Path.cwd()), indent=2))
    errors = sum(d.severity == "error" for d in problems)
    warnings = len(problems) - errors
    if problems:
        click.echo(
            f"{len(problems)} problem(s) found: {errors} error(s), {warnings} warning(s)",
            err=True,
        )
    if errors or (strict and warnings):
        sys.exit(EXIT_FAILED)


def _playbook_files(arguments: tuple[Path, ...]) -> list[Path]:
    """Files as given; directories as every *.yaml/*.yml under them; anything
    else that is no file, as a glob pattern (a pattern matching nothing is
    kept as given, so that it is reported as not found)."""
    found: list[Path] = []
    for argument in arguments:
        if argument.is_dir():
            found += sorted(
                p for p in argument.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()
            )
        elif not argument.exists() and any(ch in str(argument) for ch in "*?["):
            matches = sorted(Path(m) for m in glob.glob(str(argument), recursive=True))
            found += [m for m in matches if m.is_file()] or [argument]
        else:
            found.append(argument)
    return list(dict.fromkeys(found))


def _selection_opts(command: Any) -> Any:
    for option in (_list_steps_opt, _skip_opt, _only_opt, _start_at_opt):
        command = option(command)
    return command


@_console_options
@cli.command()
@_playbook_arg
@_site_opt
@_param_opt
@_params_file_opt
@_confirm_opt
@_selection_opts
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Save the plan as JSON for `run --plan` (it records the playbook, site, params, "
    "steps and the site's fingerprint).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def plan(
    playbook: Path,
    site: Path | None,
    params: tuple[str, ...],
    params_files: tuple[Path, ...],
    confirms: tuple[str, ...],
    start_at: str | None,
    only: str | None,
    skip: str | None,
    list_steps: bool,
    output: Path | None,
    as_json: bool,
) -> None:
    """Dry run: show exactly what `run` would change. Changes nothing.

    Checks every step's preconditions on the live site, predicts the changes per
    table and state, the media writes, the reports and the data loss.
    Exits 1 if a step would fail, 3 if a safety gate would refuse.

    \b
    Examples:
      recover plan playbooks/archive-volume-recovery.yaml --site demo-site/archive \\
          --param volume=VOL0003 -o plan.json
      recover show plan.json
      recover run --plan plan.json
    """
    from runner import console
    from runner.engine.plan import make_plan

    steps = (start_at, only, skip)
    if list_steps:
        _list_steps(playbook, site, params, params_files, confirms, steps)
        return
    if output is not None and not output.resolve().parent.is_dir():
        raise UsageError(
            f"cannot save the plan to {output}: directory {output.parent} does not exist",
            fix="create the directory first, or save the plan elsewhere",
        )
    request = _request(playbook, site, params, confirms, params_files, steps)
    with _progress_shown():
        result = make_plan(request)
    data = result.to_json()
    text = console.describe_plan(result)
    if output is not None:
        try:
            output.write_text(
                json.dumps({**data, "text": text}, indent=2, default=str) + "\n", encoding="utf-8"
            )
        except OSError as exc:
            raise RecoverError(
                f"cannot save the plan to {output}: {exc.strerror or exc}",
                fix="save the plan somewhere writable",
            ) from exc
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        _terminal().lines(text.split("\n"))
        if output is not None:
            command = f"recover run --plan {shlex.quote(str(output))}"
            confirm = (
                f" (it asks to confirm {len(result.destructive_pending())} destructive step(s); "
                "add --yes to confirm without a terminal)"
                if result.destructive_pending()
                else ""
            )
            click.echo(f"Plan saved to {output}; run it with `{command}`{confirm}.")
    sys.exit(result.exit_code)


@_console_options
@cli.command()
@click.argument("plan_file", metavar="PLAN", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the plan as `plan --json` did.")
def show(plan_file: Path, as_json: bool) -> None:
    """Print a saved plan as `recover plan` printed it. Reads nothing else.

    \b
    Example:
      recover show plan.json
    """
    from runner.engine.planfile import read_plan

    saved = read_plan(plan_file)
    if as_json:
        click.echo(json.dumps(saved.as_printed_json(), indent=2, default=str))
    else:
        click.echo(saved.text)


@_console_options
@cli.command()
@click.argument("playbook", required=False, type=click.Path(path_type=Path, dir_okay=False))
@_site_opt
@_param_opt
@_params_file_opt
@_confirm_opt
@_selection_opts
@click.option("--yes", is_flag=True, help="Confirm destructive steps (for automation).")
@click.option(
    "--plan",
    "plan_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Run this saved plan: its playbook, site, params and steps (nothing else needed); "
    "refused (exit 3) if the site changed since or other options differ from it.",
)
@click.option(
    "--new-run",
    is_flag=True,
    help="Start a fresh run even if this playbook already finished on the site.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="At the end, print the run as JSON (as `status --json` shows it); "
    "the step lines go to stderr.",
)
def run(
    playbook: Path | None,
    site: Path | None,
    params: tuple[str, ...],
    params_files: tuple[Path, ...],
    confirms: tuple[str, ...],
    start_at: str | None,
    only: str | None,
    skip: str | None,
    list_steps: bool,
    yes: bool,
    plan_file: Path | None,
    new_run: bool,
    as_json: bool,
) -> None:
    """Execute a playbook (or a saved plan); run it again to resume after an interruption.

    Each step's catalog changes commit atomically with its journal entry. Steps
    that can lose data ask for confirmation (or need --yes); without a terminal
    and without --yes nothing runs (exit 3).

    \b
    Examples:
      recover run playbooks/archive-volume-recovery.yaml --site demo-site/archive
      recover run --plan plan.json --yes
    """
    from runner.engine.planfile import read_plan
    from runner.engine.run import execute_run
    from runner.engine.status import read_run

    steps = (start_at, only, skip)
    saved: SavedPlan | None = None
    if plan_file is not None:
        saved = read_plan(plan_file)  # before anything else
        request = _request_from_plan(saved, playbook, site, params, params_files, confirms, steps)
    elif playbook is None:
        raise UsageError(
            "run needs a PLAYBOOK or a saved plan",
            fix="give one: `recover run PLAYBOOK --site DIR` or `recover run --plan PLAN.json`",
        )
    elif list_steps:
        _list_steps(playbook, site, params, params_files, confirms, steps)
        return
    else:
        request = _request(playbook, site, params, confirms, params_files, steps)
    if list_steps:
        _list_steps(request.playbook.path, request.site.root, (), (), (), steps, request)
        return
    signal.signal(signal.SIGTERM, _terminated)  # `kill` rolls back the step like Ctrl-C
    interactive = sys.stdin.isatty()
    try:
        with _progress_shown():
            result = execute_run(
                request,
                yes=yes,
                confirm=_ask if interactive else None,
                plan=saved,
                new_run=new_run,
                on_step=_print_step_to_stderr if as_json else _print_step,
            )
    except (RecoverError, KeyboardInterrupt):
        if as_json:
            _print_run_this_process_ran(request)
        raise
    say = functools.partial(click.echo, err=as_json)
    if result.already_done:
        say(
            f"Run {result.run_id} of {request.playbook.name} already finished on this "
            "site; nothing to do (use --new-run to run it again)."
        )
    else:
        for line in _summary(result.outcomes, request.allow_loss):
            say(line)
        say(
            f"Run {result.run_id} {'resumed and ' if result.resumed else ''}finished. "
            f"Log: {result.log_path}"
        )
    if as_json:
        click.echo(json.dumps(read_run(request.site, result.run_id), indent=2, default=str))


def _print_run_this_process_ran(request: Request) -> None:
    """`run --json` after a failure: the run as the journal holds it, if this
    process started or resumed one (a refusal before that prints nothing)."""
    from runner.engine.journal import peek
    from runner.engine.request import run_key
    from runner.engine.status import read_run

    latest, _ = peek(request.site.state_dir / "journal.sqlite", run_key(request))
    if latest is not None and latest.pid == os.getpid():
        click.echo(json.dumps(read_run(request.site, latest.run_id), indent=2, default=str))


def _request_from_plan(
    saved: SavedPlan,
    playbook: Path | None,
    site: Path | None,
    params: tuple[str, ...],
    params_files: tuple[Path, ...],
    confirms: tuple[str, ...],
    steps: tuple[str | None, str | None, str | None],
) -> Request:
    """The request a saved plan records; options given beside it must agree with it."""
    from runner.engine.planfile import FRESH_PLAN_FIX, require_agreement
    from runner.engine.request import make_request
    from runner.engine.selection import select_steps
    from runner.playbook.model import convert_param
    from runner.playbook.validate import load_playbook

    registry = _registry()
    if not saved.playbook.is_file():
        raise StalePlan(
            f"the plan's playbook {saved.playbook} no longer exists",
            fix="put the playbook back, or make a fresh plan with `recover plan ... -o PLAN.json`",
        )
    loaded = load_playbook(saved.playbook, registry)
    given: dict[str, tuple[Any, Any]] = {}
    if playbook is not None:
        given["playbook"] = (str(saved.playbook), str(playbook.resolve()))
    if site is not None:
        given["site"] = (str(saved.site), str(site.resolve()))
    values = _params_from_files(loaded, params_files)
    for name, raw in _params(params).items():
        values[name] = convert_param(loaded.param_named(name, "--param"), raw)
    for name, value in values.items():
        planned = saved.params.get(name)
        given[f"param {name}"] = (planned, _as_json(value))
    if any(option is not None for option in steps):
        chosen = select_steps(loaded, *steps)
        given["steps"] = (saved.selection or "all", chosen or "all")
    extra = sorted(set(confirms) - set(loaded.confirm))
    if extra:
        given["--confirm"] = (sorted(saved.confirmations), extra)
    require_agreement(saved, given)
    try:
        return make_request(
            loaded,
            saved.site,
            {},
            saved.confirmations,
            registry=registry,
            typed=saved.params,
            selection=saved.selection,
        )
    except (UsageError, SiteError) as exc:  # the playbook or the site changed since
        changed = (
            "; the playbook changed since the plan was made"
            if loaded.sha256 != saved.data.get("playbook_sha256")
            else ""
        )
        raise StalePlan(
            f"the plan {saved.path} no longer fits its playbook and site: {exc.message}{changed}",
            fix=FRESH_PLAN_FIX,
        ) from exc


def _as_json(value: Any) -> Any:
    """A value as a plan file holds it (JSON), to compare with one read back."""
    return json.loads(json.dumps(value, default=str))


def _list_steps(
    playbook: Path,
    site: Path | None,
    params: tuple[str, ...],
    params_files: tuple[Path, ...],
    confirms: tuple[str, ...],
    steps: tuple[str | None, str | None, str | None],
    request: Request | None = None,
) -> None:
    """The playbook's steps; with a site, each one's state in the journal."""
    from runner.engine.selection import select_steps
    from runner.engine.status import journal_states
    from runner.playbook.validate import load_playbook

    registry = _registry()
    if request is None and site is not None:
        request = _request(playbook, site, params, confirms, params_files, steps)
    loaded = request.playbook if request is not None else load_playbook(playbook, registry)
    selection = request.selection if request is not None else select_steps(loaded, *steps)
    states = journal_states(request) if request is not None else {}
    header = ["STEP", "ACTION", "DESTRUCTIVE", "WHEN"]
    header += ["SELECTED"] if selection is not None else []
    header += ["STATE"] if request is not None else []
    rows = [header]
    for step in loaded.steps:
        row = [
            step.id,
            step.action,
            "yes" if registry.info(step.action).destructive else "no",
            "-" if step.when is None else " ".join(str(step.when).split()),
        ]
        row += [] if selection is None else ["yes" if step.id in selection else "no"]
        row += [] if request is None else [states.get(step.id, "pending")]
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _terminated(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _ask(plan_result: PlanResult) -> bool:
    from runner import console

    _terminal().lines(console.describe_plan(plan_result).split("\n"))
    pending = ", ".join(o.record.step_id for o in plan_result.destructive_pending())
    return click.confirm(f"\nSteps {pending} can lose data as shown above. Proceed?", default=False)


def _print_case(case: DemoCase) -> None:
    click.echo(f"\n=== {case.title}\nsite: {case.site}\nplaybook: {case.playbook}")


def _print_demo_done(case: DemoCase, request: Request, result: RunResult) -> None:
    _print_summary(result.outcomes, request.allow_loss)
    click.echo(
        f"reports are under {case.site / 'reports'}; journal: `recover status --site {case.site}`"
    )


def _print_error(exc: RecoverError) -> None:
    for diagnostic in getattr(exc, "diagnostics", ()):
        click.echo(diagnostic.render())
    click.echo(f"error: {exc.render()}")


def _print_step(outcome: StepOutcome) -> None:
    # A failed step's error is printed next, with its fix, by the error handler.
    from runner import console

    _terminal().lines(console.describe_step(outcome, planning=False, show_error=False))


def _print_step_to_stderr(outcome: StepOutcome) -> None:
    """`run --json` keeps stdout for the one JSON document."""
    from runner import console

    for line in console.describe_step(outcome, planning=False, show_error=False):
        click.echo(line, err=True)


def _print_summary(outcomes: list[StepOutcome], allowed: dict[str, int | None]) -> None:
    _terminal().lines(_summary(outcomes, allowed))


def _summary(outcomes: list[StepOutcome], allowed: dict[str, int | None]) -> list[str]:
    from runner.engine.loss import LossTally

    lines = LossTally.of((o.record for o in outcomes), allowed).describe()
    reports = [path for o in outcomes for path in o.record.reports]
    if reports:
        lines.append("Reports: " + ", ".join(reports))
    return lines


@_console_options
@cli.command()
@click.option(
    "--site",
    type=click.Path(path_type=Path, file_okay=False),
    default=".",
    show_default=True,
    help="Site directory.",
)
@click.option("--limit", default=5, show_default=True, help="How many recent runs to show.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def status(site: Path, limit: int, as_json: bool) -> None:
    """Show runs on a site: steps, states, counts, timings, and who holds the lock.

    \b
    Example:
      recover status --site demo-site/archive
    """
    from runner import console
    from runner.engine.lock import holder_of
    from runner.engine.status import read_status
    from runner.site import Site

    where = Site(site.resolve())
    where.require_exists()
    runs = read_status(where, limit)
    holder = holder_of(where.state_dir)
    if as_json:
        click.echo(json.dumps({"locked_by": holder, "runs": runs}, indent=2, default=str))
    else:
        click.echo(console.describe_status(runs, holder))


class WorldGroup(click.Group):
    """`recover world NAME`: one subcommand per procedure that has a generator,
    looked up in the registry only when asked (so `recover --help` loads none)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(p.name for p in _registry().procedures if p.world is not None)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        for procedure in _registry().procedures:
            command = procedure.world_command() if procedure.name == cmd_name else None
            if command is not None:
                return _console_options(command)
        return None


@_console_options
@cli.group(cls=WorldGroup)
def world() -> None:
    """Generate a site (catalogs and media, with damage) for one procedure.

    Each generator is deterministic from --seed and writes scenario.json with
    the expected outcome.

    \b
    Example:
      recover world archive sites/archive --seed 7 --studies 500
    """


@_console_options
@cli.command()
@click.argument(
    "directory",
    required=False,
    default="demo-site",
    type=click.Path(path_type=Path, file_okay=False),
)
@click.option("--force", is_flag=True, help="Replace DIRECTORY if it exists.")
def demo(directory: Path, force: bool) -> None:
    """Generate demo sites and run the shipped playbooks on them, non-interactively.

    \b
    Example:
      recover demo /tmp/recover-demo
    """
    from runner.demo import prepare, run_demos

    prepare(directory, force=force)
    with _progress_shown():
        failures = run_demos(
            directory,
            _registry(),
            on_case=_print_case,
            on_step=_print_step,
            on_done=_print_demo_done,
            on_error=_print_error,
        )
    click.echo(f"\nDemo sites are in {directory.resolve()}.")
    if failures:
        sys.exit(EXIT_FAILED)


@_console_options
@cli.command()
@click.argument("name", required=False)
def actions(name: str | None) -> None:
    """List every action with a one-line summary, or show one action.

    With NAME: its arguments (type, required, default), its outputs (for
    `steps.<id>.outputs.<name>`), the data-loss units it counts and whether
    it is destructive, all from its schema and declarations.

    \b
    Examples:
      recover actions
      recover actions archive.recovery_attempt
    """
    from runner.playbook import actions_doc

    registry = _registry()
    if name is None:
        for line in actions_doc.summary_lines(registry):
            click.echo(line)
        return
    if name not in registry:
        close = difflib.get_close_matches(name, list(registry.actions), n=1)
        raise RecoverError(
            f"unknown action {name!r}",
            fix=f"did you mean {close[0]!r}?"
            if close
            else "run `recover actions` to list every action",
        )
    click.echo(actions_doc.text(registry, name), nl=False)


@_console_options
@cli.command()
@click.option("--action", help="Print only this action's argument schema.")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the schema to FILE instead of printing it (for editors).",
)
def schema(action: str | None, output: Path | None) -> None:
    """Print the playbook JSON Schema (2020-12), with every action's arguments.

    \b
    Examples:
      recover schema --output playbook.schema.json
      recover schema --action archive.recovery_attempt
    """
    from runner.playbook.schema import bundle_text

    registry = _registry()
    if action:
        if action not in registry:
            raise RecoverError(
                f"unknown action {action!r}", fix="run `recover schema` to see every action"
            )
        text = json.dumps(registry.action_schema(action), indent=2) + "\n"
    else:
        text = bundle_text(registry)
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise RecoverError(
            f"cannot write {output}: {exc.strerror or exc}", fix="choose a writable path"
        ) from exc
    click.echo(f"wrote {output}")


@_console_options
@cli.command()
@click.option(
    "--copy",
    "copy_to",
    type=click.Path(path_type=Path, file_okay=False),
    help="Copy them into DIR (created if needed) to adapt and keep under version control.",
)
@click.option("--paths", "paths_only", is_flag=True, help="Print only the paths, one per line.")
def playbooks(copy_to: Path | None, paths_only: bool) -> None:
    """List the shipped playbooks, with the path each is installed at.

    The paths work as they are with validate, plan and run; --copy puts
    copies where you keep your own playbooks. Existing files are not replaced.

    \b
    Examples:
      recover playbooks
      recover validate $(recover playbooks --paths)
      recover playbooks --copy ./playbooks
    """
    found = _shipped_playbooks(_registry())
    if copy_to is None:
        for procedure, path in found:
            click.echo(str(path) if paths_only else f"{procedure:<12} {path}")
        return
    copy_to.mkdir(parents=True, exist_ok=True)
    for _, path in found:
        target = copy_to / path.name
        if target.exists():
            click.echo(f"kept {target} (exists)")
            continue
        target.write_bytes(path.read_bytes())
        click.echo(f"copied {target}")


def _shipped_playbooks(registry: Registry) -> list[tuple[str, Path]]:
    """(procedure name, playbook path) for every procedure's playbooks folder."""
    from runner.contract import as_path

    found: list[tuple[str, Path]] = []
    seen: set[Path] = set()
    for procedure in registry.procedures:
        folder = procedure.assets.playbooks
        if folder is None:
            continue
        for entry in sorted(as_path(folder).glob("*.y*ml")):
            if entry in seen:
                continue
            seen.add(entry)
            owner = _owner_of(registry, entry)
            found.append((owner or procedure.name, entry))
    return found


def _owner_of(registry: Registry, playbook: Path) -> str | None:
    """The procedure whose actions a shipped playbook uses (its first step's)."""
    text = playbook.read_text(encoding="utf-8")
    for procedure in registry.procedures:
        if f"action: {procedure.name}." in text:
            return procedure.name
    return None


def main() -> None:
    try:
        code = cli.main(prog_name="recover", standalone_mode=False)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.ClickException as exc:
        exc.show()
        code = EXIT_USAGE if isinstance(exc, click.UsageError) else exc.exit_code
    except click.Abort:
        click.echo("interrupted", err=True)
        code = EXIT_INTERRUPTED
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        code = EXIT_INTERRUPTED
    if "loguru" in sys.modules:  # only a command that logged has messages to flush
        sys.modules["loguru"].logger.complete()
    sys.exit(code if isinstance(code, int) else EXIT_OK)
