"""Fixtures for the core tests: the toy procedure, a toy site, its playbook.

The toy procedure (tests/toyproc.py) is registered through
RECOVER_EXTRA_PROCEDURES only inside tests that ask for `toy_env`; every
command builds its own registry, so the other tests see exactly the shipped
procedures.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.contract import Registry
from runner.procedures import EXTRA_ENV, load_registry
from tests.helpers import NOW, TOY_MODULE, TOY_PLAYBOOK
from tests.toyproc import build_site


@pytest.fixture
def toy_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """The toy procedure registered (its shipped template is in tests/toy_templates/),
    the clock pinned, no crash injection, and temporary files (plan scratch,
    crash logs) kept under tmp_path."""
    monkeypatch.setenv(EXTRA_ENV, TOY_MODULE)
    monkeypatch.setenv("RECOVER_NOW", NOW)
    monkeypatch.delenv("RECOVER_CRASH_AT", raising=False)
    scratch = tmp_path / "tmp"  # plan scratch copies, crash logs of internal errors
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    yield


@pytest.fixture
def toy_registry(toy_env: None) -> Registry:
    """The shipped procedures plus the toy one."""
    return load_registry()


@pytest.fixture
def registry() -> Registry:
    """Exactly the shipped procedures."""
    return load_registry({})


@pytest.fixture
def toy_site(tmp_path: Path, toy_env: None) -> Path:
    """A toy site: 100 items, items 1-5 bad (lost when marked), device offline."""
    return build_site(tmp_path / "site")


@pytest.fixture
def toy_playbook(tmp_path: Path, toy_site: Path) -> Path:
    """TOY_PLAYBOOK beside the site (its site.root is `site`)."""
    path = tmp_path / "toy.yaml"
    path.write_text(TOY_PLAYBOOK, encoding="utf-8")
    return path


@pytest.fixture
def write_playbook(tmp_path: Path) -> Callable[..., Path]:
    """write_playbook(text, name="pb.yaml") -> path, in tmp_path."""

    def write(text: str, name: str = "pb.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def fast_sqlite_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cap SQLite's busy timeout at 1 s, so a test of a lock bug fails fast
    instead of waiting the journal's 30 s."""
    original = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        kwargs["timeout"] = min(float(kwargs.get("timeout", 5.0)), 1.0)
        return original(*args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", connect)
