"""recover: a declarative recovery runner for catalogs and emulated media."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    """`__version__`, looked up only when asked: importlib.metadata costs start-up time."""
    if name != "__version__":
        raise AttributeError(f"module 'runner' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("recover")
    except PackageNotFoundError:  # imported from a source tree that was never installed
        return "0+unknown"
