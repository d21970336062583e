"""recover: a declarative recovery runner for catalogs and emulated media."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("recover")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
