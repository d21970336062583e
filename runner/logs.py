"""Logging: readable lines on stderr; each run also logs to a file in its site."""

from __future__ import annotations

from typing import TYPE_CHECKING

from loguru import logger

if TYPE_CHECKING:
    from runner.terminal import Terminal


def setup(terminal: Terminal) -> None:
    """Send log lines at the chosen level to the terminal's stderr sink, which
    leaves out what a step's block already shows (runner.terminal)."""
    logger.remove()
    logger.add(
        terminal.log,
        level=terminal.options.level,
        filter=terminal.shows,  # type: ignore[arg-type]
        format="{message}",
    )
