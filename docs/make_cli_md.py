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


def _walk(command: click.Command, path: list[str]) -> list[tuple[list[str], click.Command]]:
    found = [(path, command)]
    if isinstance(command, click.Group):
        for name in sorted(command.commands):
            found += _walk(command.commands[name], [*path, name])
    return found


def render() -> str:
    parts = [
        "# Command-line reference\n",
        "Generated from each command's `--help` by `python docs/make_cli_md.py`.\n",
    ]
    for path, command in _walk(cli, ["recover"]):
        with click.Context(command, info_name=" ".join(path), terminal_width=100) as ctx:
            text = command.get_help(ctx)
        parts.append(f"\n## `{' '.join(path)}`\n\n```\n{text}\n```\n")
    return "".join(parts)


if __name__ == "__main__":
    (ROOT / "docs" / "cli.md").write_text(render(), encoding="utf-8")
    print("wrote docs/cli.md")
