"""A fix killed with SIGKILL and run again ends identical to an uninterrupted fix."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from .conftest import PLAYBOOK, Site, catalog_dump, subprocess_run, tree


def _run(site: Path, since: str, crash: str | None = None, batch: int = 2) -> int:
    env = {"RECOVER_CRASH_AT": crash} if crash else {}
    result = subprocess_run(
        [
            "run",
            str(PLAYBOOK),
            "--site",
            str(site),
            "--yes",
            "--param",
            f"since={since}",
            "--param",
            f"batch_size={batch}",
        ],
        env,
    )
    return result.returncode


@pytest.fixture(scope="module")
def uninterrupted(template_site: Site, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pools-clean") / "site"
    shutil.copytree(template_site.root, root)
    assert _run(root, template_site.since) == 0
    return root


def containers(root: Path) -> Counter[str]:
    """Content digests of every container file anywhere in the pools (incl. lost+found)."""
    return Counter(v for k, v in tree(root).items() if k.startswith("pools/"))


@pytest.mark.parametrize("where", ["analysis", "apply-early", "apply-late", "report"])
def test_killed_fix_resumes_to_the_same_end(
    template_site: Site, uninterrupted: Path, tmp_path: Path, where: str
) -> None:
    scenario = template_site.scenario
    examined = scenario["expected"]["fix"]["elements_examined"]
    scanned = scenario["pool_files"]
    # progress items of the fix step: pool files, elements analysed, applied, reported
    kill_after = {
        "analysis": scanned + examined // 2,
        "apply-early": scanned + examined + 3,
        "apply-late": scanned + examined + examined - 2,
        "report": scanned + 3 * examined - 2,  # while the text report is being written
    }[where]
    site = tmp_path / "site"
    shutil.copytree(template_site.root, site)
    assert _run(site, template_site.since, crash=f"fix:{kill_after}") == -9
    assert _run(site, template_site.since) == 0
    assert catalog_dump(site) == catalog_dump(uninterrupted)
    assert tree(site) == tree(uninterrupted)
    # no container lost or duplicated: same multiset of container contents
    assert containers(site) == containers(uninterrupted)
    original = containers(template_site.root)
    rebuilt = scenario["expected"]["fix"]["containers_rebuilt"]
    assert sum(containers(site).values()) == sum(original.values()) + rebuilt


def test_abandoned_interrupted_fix_then_new_run_loses_nothing(
    template_site: Site, tmp_path: Path
) -> None:
    """Containers rebuilt by a killed run that is then abandoned (--new-run, same clock)
    are alternates to the next run: the new containers never take their names."""
    from .test_e2e import assert_container_holds_catalog_data

    scenario = template_site.scenario
    examined = scenario["expected"]["fix"]["elements_examined"]
    site = tmp_path / "site"
    shutil.copytree(template_site.root, site)
    crash = f"fix:{scenario['pool_files'] + examined + examined - 1}"
    # one big batch: every container rebuilt so far is on disk but not in the catalog
    assert _run(site, template_site.since, crash=crash, batch=1000) == -9
    result = subprocess_run(
        [
            "run",
            str(PLAYBOOK),
            "--site",
            str(site),
            "--yes",
            "--new-run",
            "--param",
            f"since={template_site.since}",
        ]
    )
    assert result.returncode == 0, result.stderr
    done = Site(site, scenario)
    for path, want in scenario["damaged"].items():
        if want["outcome"] == "fix":
            assert_container_holds_catalog_data(done, path)
