"""Hostile values in playbooks and parameters: a clean error (exit 1 or 2) that says
how to fix it, never an internal error, never a hang, and the site untouched."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.helpers import PLAYBOOKS_DIR, assert_clean, invoke, snapshot

KEYED = PLAYBOOKS_DIR / "keyed-file-repair.yaml"
ARCHIVE = PLAYBOOKS_DIR / "archive-volume-recovery.yaml"


@pytest.fixture
def keyed_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("RECOVER_EXTRA_PROCEDURES", raising=False)
    site = tmp_path / "site"
    assert invoke("world", "keyed", site, "--records", "500").exit_code == 0
    return site


def _variant(tmp_path: Path, source: Path, old: str, new: str) -> Path:
    text = source.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "variant.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def test_an_integer_too_long_for_python_is_a_positioned_error(tmp_path: Path) -> None:
    path = _variant(tmp_path, KEYED, "default: 90", "default: " + "9" * 5000)
    result = invoke("validate", path)
    assert result.exit_code == 1
    assert_clean(result)
    assert "this integer has 5,000 digits" in result.stdout
    assert "fix: write a smaller number, or quote it" in result.stdout


def test_an_integer_too_large_for_sqlite_is_refused_at_validate(tmp_path: Path) -> None:
    # ranges_list has no maximum in its schema; SQLite would overflow at run time.
    path = _variant(
        tmp_path, ARCHIVE, "default: []", "default: [{begin: 1, end: 99999999999999999999}]"
    )
    result = invoke("validate", path)
    assert result.exit_code == 1, result.output
    assert_clean(result)
    assert "does not fit in SQLite's 64-bit integers" in result.stdout


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("9" * 5000, "this integer has 5,000 digits"),
        ("99999999999999999999", "is greater than the maximum"),
    ],
)
def test_a_huge_integer_param_is_a_clean_error(keyed_site: Path, value: str, message: str) -> None:
    before = snapshot(keyed_site)
    result = invoke("plan", KEYED, "--site", keyed_site, "--param", f"memory_mb={value}")
    assert result.exit_code in (1, 2)
    assert_clean(result)
    assert message in result.stderr
    assert len(result.stderr) < 2000  # the value is not echoed whole
    assert snapshot(keyed_site) == before


def test_a_param_that_is_not_utf8_is_a_usage_error(keyed_site: Path) -> None:
    before = snapshot(keyed_site)
    result = invoke("run", KEYED, "--site", keyed_site, "--yes", "--param", "user=\udcff\udcfe")
    assert result.exit_code == 2
    assert_clean(result)
    assert "--param user: the value is not valid UTF-8 text (byte 0xff at position 0)" in (
        result.stderr
    )
    assert snapshot(keyed_site) == before


@pytest.mark.parametrize(
    "expression",
    [
        "{{ 'x' | center(10**9) }}",
        "{{ lipsum(10**6) }}",
        "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
        "{% set r = range(100000) %}{% for a in r %}{% for b in r %}{% endfor %}{% endfor %}",
    ],
)
def test_an_expression_that_builds_huge_output_does_not_hang_validate(
    tmp_path: Path, expression: str
) -> None:
    path = _variant(
        tmp_path, KEYED, 'report: "{{ report_dir }}/keyed-verify.txt"', f'report: "{expression}"'
    )
    started = time.monotonic()
    result = invoke("validate", path)
    assert time.monotonic() - started < 10
    assert result.exit_code == 1
    assert_clean(result)
    assert "unsafe expression refused by the sandbox" in result.stdout


def test_a_huge_directory_that_is_not_a_site_is_refused_quickly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--site ~` by mistake: refused before anything is fingerprinted."""
    monkeypatch.setattr("runner.engine.request.NOT_A_SITE_ENTRIES", 50)
    home = tmp_path / "home"
    for n in range(60):
        (home / f"dir{n % 6}").mkdir(parents=True, exist_ok=True)
        (home / f"dir{n % 6}" / f"file{n}").write_text("x")
    for command in (["plan"], ["run", "--yes"]):
        result = invoke(*command, KEYED, "--site", home)
        assert result.exit_code == 1
        assert_clean(result)
        assert "does not look like a site for keyed-file-repair" in result.stderr
        assert "files/customers.dat" in result.stderr
    assert not (home / ".recover").exists()
