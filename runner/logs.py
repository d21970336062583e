"""Logging: readable lines on stderr; each run also logs to a file in its site."""

from __future__ import annotations

import sys

from loguru import logger


def setup(verbosity: int) -> None:
    level = {-1: "WARNING", 0: "INFO"}.get(verbosity, "DEBUG")
    logger.remove()
    logger.add(
        sys.stderr,
        level=level,
        colorize=None,
        format="<dim>{time:HH:mm:ss}</dim> <level>{level: <7}</level> {message}",
    )
