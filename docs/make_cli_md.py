"""Regenerate docs/cli.md from the commands' own --help: `python docs/make_cli_md.py`.

tests/test_docs.py fails when docs/cli.md and the help texts drift apart.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runner.cli import cli  # noqa: E402


def _walk(ctx: click.Context) -> list[tuple[str, str]]:
    """(command path, help text) for a command and its subcommands, as `--help` shows them.

    Child contexts hang off the root's, so they inherit its settings (`-h`) exactly
    as when the command line is parsed, whatever ran before in this process.
    """
    found = [(ctx.command_path, ctx.command.get_help(ctx))]
    if isinstance(ctx.command, click.Group):
        for name in sorted(ctx.command.list_commands(ctx)):
            sub = ctx.command.get_command(ctx, name)
            assert sub is not None
            with click.Context(sub, info_name=name, parent=ctx) as child:
                found += _walk(child)
    return found


def render() -> str:
    parts = [
        "# Command-line reference\n",
        "Generated from each command's `--help` by `python docs/make_cli_md.py`.\n",
    ]
    with cli.make_context(
        "recover", ["--help"], resilient_parsing=True, terminal_width=100
    ) as root:
        for path, text in _walk(root):
            parts.append(f"\n## `{path}`\n\n```\n{text}\n```\n")
    return "".join(parts)


if __name__ == "__main__":
    (ROOT / "docs" / "cli.md").write_text(render(), encoding="utf-8")
    print("wrote docs/cli.md")
