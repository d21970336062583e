"""A tape write killed with SIGKILL and run again ends identical to an uninterrupted run."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from runner.procedures.case_archive import media

from .conftest import PLAYBOOK, Site, catalog_dump, subprocess_run, tree

CURRENT = "Archive_pool_2_2"


def _run(site: Path, crash: str | None = None) -> int:
    env = {"RECOVER_CRASH_AT": crash} if crash else {}
    result = subprocess_run(["run", str(PLAYBOOK), "--site", str(site), "--yes"], env)
    return result.returncode


@pytest.fixture(scope="module")
def uninterrupted(template_site: Site, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cases-clean") / "site"
    shutil.copytree(template_site.root, root, symlinks=True)
    assert _run(root) == 0
    return root


def records(root: Path) -> Counter[str]:
    with open(root / "tapes" / f"{CURRENT}.tape", "rb") as handle:
        return Counter(info.relpath for _b, info in media.scan(handle) if info.problem is None)


@pytest.mark.parametrize("where", ["early", "last-record", "emptying-cache"])
def test_killed_tape_write_resumes_to_the_same_end(
    template_site: Site, uninterrupted: Path, tmp_path: Path, where: str
) -> None:
    files = template_site.scenario["playbook"]["write"]["files"]
    kill_after = {"early": 3, "last-record": files, "emptying-cache": files + 4}[where]
    site = tmp_path / "site"
    shutil.copytree(template_site.root, site, symlinks=True)
    assert _run(site, crash=f"write:{kill_after}") == -9
    assert (site / "cache.lock").exists()  # the killed write held the cache lock
    assert _run(site) == 0
    assert catalog_dump(site) == catalog_dump(uninterrupted)
    assert tree(site) == tree(uninterrupted)
    found = records(site)
    assert max(found.values()) == 1  # nothing written twice
    assert sum(found.values()) == sum(records(uninterrupted).values())


def test_torn_append_beyond_the_committed_end_is_replaced(
    template_site: Site, uninterrupted: Path, tmp_path: Path
) -> None:
    """A crash after the tape file was replaced but before the catalog committed
    leaves bytes past `used`: the repeated write starts from the committed end."""
    site = tmp_path / "site"
    shutil.copytree(template_site.root, site, symlinks=True)
    with open(site / "tapes" / f"{CURRENT}.tape", "ab") as handle:
        handle.write(b"SESS" + b"\x00" * 500)
    assert _run(site) == 0
    assert tree(site) == tree(uninterrupted)
    assert catalog_dump(site) == catalog_dump(uninterrupted)
