"""Planted links and special files: a run never reads or writes outside its site.

An attacker (or an accident) who can create files in a site must not be able to
make a run overwrite, or copy into a report, a file outside it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import PLAYBOOKS_DIR, assert_clean, invoke

KEYED = PLAYBOOKS_DIR / "keyed-file-repair.yaml"


def _links_leaving(root: Path) -> list[str]:
    real_root = os.path.realpath(root)
    leaving = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            if os.path.islink(path) and not os.path.realpath(path).startswith(real_root + os.sep):
                leaving.append(os.path.relpath(path, root))
    return leaving


@pytest.fixture
def keyed_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("RECOVER_EXTRA_PROCEDURES", raising=False)
    site = tmp_path / "site"
    made = invoke("world", "keyed", site, "--records", "3000", "--damage", "eof,dangling,missing")
    assert made.exit_code == 0, made.output
    return site


@pytest.mark.parametrize(
    "planted",
    [
        "files/.customers.key.recover-tmp",
        "files/.customers.dat.recover-tmp",
        "reports/.keyed-count.txt.recover-tmp",
        "reports/.keyed-repair.txt.recover-tmp",
    ],
)
def test_a_link_at_a_temporary_name_cannot_redirect_a_write(
    keyed_site: Path, tmp_path: Path, planted: str
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"precious, outside the site\n")
    link = keyed_site / planted
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(outside)
    result = invoke("run", KEYED, "--site", keyed_site, "--yes")
    assert result.exit_code == 0, result.output
    assert outside.read_bytes() == b"precious, outside the site\n"
    assert _links_leaving(keyed_site) == []
    assert (keyed_site / "reports" / "keyed-count.txt").is_file()


def test_a_site_template_linking_outside_is_refused_not_rendered(
    keyed_site: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET-TOKEN\n", encoding="utf-8")
    template = keyed_site / "templates" / "keyed_file" / "verify.txt.j2"
    template.parent.mkdir(parents=True)
    template.symlink_to(secret)
    result = invoke("run", KEYED, "--site", keyed_site, "--yes")
    assert result.exit_code == 1
    assert_clean(result)
    assert "link that leaves the site" in result.stderr
    reports = keyed_site / "reports"
    leaked = [p for p in reports.rglob("*") if p.is_file() and "SECRET" in p.read_text()]
    assert leaked == []


def test_a_fifo_in_the_site_does_not_hang_plan(keyed_site: Path) -> None:
    os.mkfifo(keyed_site / "files" / "stray.pipe")
    (keyed_site / "zero").symlink_to("/dev/zero")
    result = invoke("plan", KEYED, "--site", keyed_site)
    assert result.exit_code == 0, result.output
