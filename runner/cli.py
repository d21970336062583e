"""The `recover` command line: thin click commands over runner's API.

Every command returns through one error handler (RecoverGroup.invoke): expected
errors print a plain message and exit with their code; Ctrl-C exits 130;
anything else is a bug, logged with its traceback to a file the user can
attach to a report.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import sys
import tempfile
import traceback
from datetime import UTC, datetime
from errno import EDQUOT, ENOSPC, EROFS
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from runner.contract import Registry
from runner.errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    PlaybookError,
    RecoverError,
    UsageError,
)

# Start-up time: each command imports what it needs when it runs (engine,
# loguru, jinja, the procedures), so `--help` and `validate` start fast.
if TYPE_CHECKING:
    from runner.contract import DemoCase
    from runner.engine.plan import PlanResult
    from runner.engine.run import RunResult
    from runner.engine.session import Request, StepOutcome

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
    if errno == EROFS or name.startswith("SQLITE_READONLY"):
        return RecoverError(
            f"the site is on a read-only file system{where}",
            fix="remount it read-write (or run where it is writable) and run again",
        )
    return None


@click.group(
    cls=RecoverGroup,
    epilog=EXIT_CODES_HELP,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option("-v", "--verbose", count=True, help="More log detail on stderr.")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors on stderr.")
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    help="Show the version and exit.",
    callback=lambda ctx, _param, value: _show_version(ctx) if value else None,
)
def cli(verbose: int, quiet: bool) -> None:
    """Run declarative recovery playbooks against catalogs and media.

    \b
    Typical session:
      recover validate playbooks/archive-volume-recovery.yaml
      recover plan playbooks/archive-volume-recovery.yaml --site SITE -o plan.json
      recover run playbooks/archive-volume-recovery.yaml --site SITE --plan plan.json
      recover status --site SITE
    """
    if click.get_current_context().invoked_subcommand in _QUIET_COMMANDS:
        return  # they log nothing: loguru stays unimported (start-up time)
    from runner import logs

    logs.setup(-1 if quiet else verbose)


#: commands that never log (no engine runs): they need no log set-up
_QUIET_COMMANDS = frozenset({"validate", "schema", "playbooks"})


def _show_version(ctx: click.Context) -> None:
    """What click's version option prints, with the version looked up only when asked."""
    from runner import __version__

    click.echo(f"recover, version {__version__}")
    ctx.exit()


def _registry() -> Registry:
    """The invocation's registry, built on first use (not for `--help` or
    `status`) and kept on the click context; its load warnings go to stderr once."""
    ctx = click.get_current_context()
    root = ctx.find_root()
    if not isinstance(root.obj, Registry):
        from runner.procedures import load_registry

        root.obj = load_registry()
        for warning in root.obj.warnings:
            click.echo(warning, err=True)
    return root.obj


def _request(
    playbook: Path, site: Path | None, params: tuple[str, ...], confirms: tuple[str, ...]
) -> Request:
    """The validated playbook bound to its site and parameter values (plan, run)."""
    from runner.engine.request import make_request
    from runner.playbook.validate import load_playbook

    registry = _registry()
    return make_request(
        load_playbook(playbook, registry), site, _params(params), confirms, registry=registry
    )


def _params(values: tuple[str, ...]) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint="--param")
        result[name.strip()] = value
    return result


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
    help="Override a playbook param (repeatable).",
)
_confirm_opt = click.option(
    "--confirm",
    "confirms",
    multiple=True,
    metavar="KEY",
    help="Grant an extra confirmation a step asks for, e.g. wide_loss_window (repeatable).",
)


@cli.command()
@click.argument(
    "playbooks", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False)
)
@click.option("--json", "as_json", is_flag=True, help="Print diagnostics as JSON.")
def validate(playbooks: tuple[Path, ...], as_json: bool) -> None:
    """Check playbooks without touching any site.

    Reports every problem at once as FILE:LINE:COL: message [json.path], with a fix.

    \b
    Example:
      recover validate playbooks/*.yaml
    """
    from runner.playbook.validate import check_playbook

    problems = []
    for path in playbooks:
        _, found = check_playbook(path, _registry())
        problems += found
        if not as_json:
            for diagnostic in found:
                click.echo(diagnostic.render())
            if not found:
                click.echo(f"{path}: ok")
    if as_json:
        click.echo(json.dumps([d.as_dict() for d in problems], indent=2))
    if problems:
        if not as_json:
            click.echo(f"{len(problems)} problem(s) found", err=True)
        sys.exit(EXIT_FAILED)


@cli.command()
@_playbook_arg
@_site_opt
@_param_opt
@_confirm_opt
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Save the plan as JSON (with the site's fingerprint) for `run --plan`.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def plan(
    playbook: Path,
    site: Path | None,
    params: tuple[str, ...],
    confirms: tuple[str, ...],
    output: Path | None,
    as_json: bool,
) -> None:
    """Dry run: show exactly what `run` would change. Changes nothing.

    Checks every step's preconditions on the live site, predicts the changes per
    table and state, the media writes, the reports and the data loss.
    Exits 1 if a step would fail, 3 if a safety gate would refuse.

    \b
    Example:
      recover plan playbooks/archive-volume-recovery.yaml --site demo-site/archive \\
          --param volume=VOL0003 -o plan.json
    """
    from runner import console
    from runner.engine.plan import make_plan

    if output is not None and not output.resolve().parent.is_dir():
        raise UsageError(
            f"cannot save the plan to {output}: directory {output.parent} does not exist",
            fix="create the directory first, or save the plan elsewhere",
        )
    request = _request(playbook, site, params, confirms)
    result = make_plan(request)
    if output is not None:
        try:
            output.write_text(json.dumps(result.to_json(), indent=2, default=str) + "\n")
        except OSError as exc:
            raise RecoverError(
                f"cannot save the plan to {output}: {exc.strerror or exc}",
                fix="save the plan somewhere writable",
            ) from exc
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2, default=str))
    else:
        click.echo(console.describe_plan(result))
        if output is not None:
            click.echo(
                f"Plan saved to {output}; run it with `recover run {playbook} --plan {output}`."
            )
    sys.exit(result.exit_code)


@cli.command()
@_playbook_arg
@_site_opt
@_param_opt
@_confirm_opt
@click.option("--yes", is_flag=True, help="Confirm destructive steps (for automation).")
@click.option(
    "--plan",
    "plan_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Only run if the site still matches this saved plan (else exit 3).",
)
@click.option(
    "--new-run",
    is_flag=True,
    help="Start a fresh run even if this playbook already finished on the site.",
)
def run(
    playbook: Path,
    site: Path | None,
    params: tuple[str, ...],
    confirms: tuple[str, ...],
    yes: bool,
    plan_file: Path | None,
    new_run: bool,
) -> None:
    """Execute a playbook; run it again to resume after an interruption.

    Each step's catalog changes commit atomically with its journal entry. Steps
    that can lose data ask for confirmation (or need --yes); without a terminal
    and without --yes nothing runs (exit 3).

    \b
    Examples:
      recover run playbooks/archive-volume-recovery.yaml --site demo-site/archive
      recover run playbooks/archive-volume-recovery.yaml --site SITE --yes --plan plan.json
    """
    from runner.engine.run import execute_run

    request = _request(playbook, site, params, confirms)
    signal.signal(signal.SIGTERM, _terminated)  # `kill` rolls back the step like Ctrl-C
    interactive = sys.stdin.isatty()
    result = execute_run(
        request,
        yes=yes,
        confirm=_ask if interactive else None,
        plan_file=plan_file,
        new_run=new_run,
        on_step=_print_step,
    )
    if result.already_done:
        click.echo(
            f"Run {result.run_id} of {request.playbook.name} already finished on this "
            "site; nothing to do (use --new-run to run it again)."
        )
        return
    _print_summary(result.outcomes, request.allow_loss)
    click.echo(
        f"Run {result.run_id} {'resumed and ' if result.resumed else ''}finished. "
        f"Log: {result.log_path}"
    )


def _terminated(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _ask(plan_result: PlanResult) -> bool:
    from runner import console

    click.echo(console.describe_plan(plan_result))
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
    from runner import console

    for line in console.describe_step(outcome, planning=False):
        click.echo(line)


def _print_summary(outcomes: list[StepOutcome], allowed: dict[str, int | None]) -> None:
    from runner.engine.loss import LossTally

    for line in LossTally.of((o.record for o in outcomes), allowed).describe():
        click.echo(line)
    reports = [path for o in outcomes for path in o.record.reports]
    if reports:
        click.echo("Reports: " + ", ".join(reports))


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
            if procedure.name == cmd_name and procedure.world is not None:
                return procedure.world
        return None


@cli.group(cls=WorldGroup)
def world() -> None:
    """Generate a site (catalogs and media, with damage) for one procedure.

    Each generator is deterministic from --seed and writes scenario.json with
    the expected outcome.

    \b
    Example:
      recover world archive sites/archive --seed 7 --studies 500
    """


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
