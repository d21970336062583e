"""Issue 13 item 4: each refusal's printed fix, followed literally, lets the re-run succeed.

Every refusal pool-container-fix can give on a generated repository is triggered through
the CLI, the `fix:` line is followed as an operator would, and the same command is run
again. Not covered: "run the fix again: it re-examines the pools" needs a container to
appear between two batches of one run (another process writing the pool).
"""

from __future__ import annotations

import re
import shutil
import sqlite3
from pathlib import Path
from typing import Any

from click.testing import Result

from tests.helpers import fix_line, playbook_copy
from tests.procedures.pool_containers.conftest import PLAYBOOK, Site, recover


def _fix_args(doc: dict[str, Any]) -> dict[str, Any]:
    return dict(next(s for s in doc["steps"] if s["id"] == "fix")["args"])


def _assert_fixed(result: Result) -> None:
    assert result.exit_code == 0, result.output
    assert "finished" in result.output
    assert "pools-fix.txt" in result.output  # the fix step ran, not only the check


def test_confirmation_refusal_fix_is_yes(site: Site) -> None:
    first = recover("run", PLAYBOOK, "--site", site.root)
    assert first.exit_code == 3
    assert "--yes" in fix_line(first.output)
    _assert_fixed(recover("run", PLAYBOOK, "--site", site.root, "--yes"))


def test_wide_window_fix_is_the_confirm_key(site: Site) -> None:
    cmd = ("run", PLAYBOOK, "--site", site.root, "--yes", "--param", "since=2026-01-01")
    first = recover(*cmd)
    assert first.exit_code == 3
    fix = fix_line(first.output)
    assert "--confirm wide_loss_window" in fix
    _assert_fixed(recover(*cmd, "--confirm", "wide_loss_window"))


def test_wide_window_fix_in_the_playbook(site: Site, tmp_path: Path) -> None:
    cmd = ("--site", site.root, "--yes", "--param", "since=2026-01-01")
    assert recover("run", PLAYBOOK, *cmd).exit_code == 3
    confirmed = playbook_copy(
        PLAYBOOK, tmp_path, lambda d: d["safety"].update(confirm=["wide_loss_window"])
    )
    _assert_fixed(recover("run", confirmed, *cmd))


def test_loss_budget_fix_names_the_param_that_raises_it(site: Site) -> None:
    """The playbook's budget is `{{ max_lost_versions }}`: the fix names that param and
    the least value that lets the step through, and following it works."""
    first = recover("run", PLAYBOOK, "--site", site.root, "--yes", "--param", "max_lost_versions=1")
    assert first.exit_code == 3
    fix = fix_line(first.output)
    found = re.search(r"run again with --param max_lost_versions=(\d+) \(or more\)", fix)
    assert found, fix
    result = recover(
        "run", PLAYBOOK, "--site", site.root, "--yes", "--param", f"max_lost_versions={found[1]}"
    )
    _assert_fixed(result)
    assert f"(allowed: {found[1]})" in result.output


def test_loss_budget_fix_in_the_playbook_works_too(site: Site, tmp_path: Path) -> None:
    first = recover("run", PLAYBOOK, "--site", site.root, "--yes", "--param", "max_lost_versions=1")
    assert first.exit_code == 3
    raised = playbook_copy(
        PLAYBOOK, tmp_path, lambda d: d["safety"]["allow_loss"].update(versions=100)
    )
    result = recover("run", raised, "--site", site.root, "--yes")
    _assert_fixed(result)
    assert "(allowed: 100)" in result.output


def test_bad_window_fix_gives_the_forms(site: Site) -> None:
    for since in ("tomorrow", "2026-01-16T00:00"):  # unparsable, then in the future
        first = recover("run", PLAYBOOK, "--site", site.root, "--yes", "--param", f"since={since}")
        assert first.exit_code == 1, first.output
        assert "--param since=yesterday.17:00" in fix_line(first.output)
    followed = ("--param", "since=yesterday.17:00")
    _assert_fixed(recover("run", PLAYBOOK, "--site", site.root, "--yes", *followed))


def test_unknown_pool_fix_names_a_source_pool(site: Site) -> None:
    first = recover("run", PLAYBOOK, "--site", site.root, "--yes", "--param", 'pools=["nope"]')
    assert first.exit_code == 1, first.output
    assert "kind 'source'" in fix_line(first.output)
    (source,) = site.query("SELECT name FROM pools WHERE kind = 'source' ORDER BY name LIMIT 1")
    picked = f'pools=["{source[0]}"]'
    _assert_fixed(recover("run", PLAYBOOK, "--site", site.root, "--yes", "--param", picked))


def test_unknown_element_fix_names_a_catalog_path(site: Site, tmp_path: Path) -> None:
    def naming(path: str) -> Any:
        def edit(doc: dict[str, Any]) -> None:
            step = next(s for s in doc["steps"] if s["id"] == "fix")
            step["args"]["elements"] = [path]

        return edit

    first = recover(
        "run", playbook_copy(PLAYBOOK, tmp_path, naming("/no/such")), "--site", site.root, "--yes"
    )
    assert first.exit_code == 1, first.output
    assert "elements table" in fix_line(first.output)
    (path,) = site.query("SELECT path FROM elements ORDER BY path LIMIT 1")
    _assert_fixed(
        recover(
            "run", playbook_copy(PLAYBOOK, tmp_path, naming(path[0])), "--site", site.root, "--yes"
        )
    )


def test_missing_pool_directory_fix_restores_it(site: Site, tmp_path: Path) -> None:
    (pool,) = site.query("SELECT path FROM pools WHERE name = 's2'")
    aside = tmp_path / "s2-backup"
    shutil.copytree(site.root / pool[0], aside)
    shutil.rmtree(site.root / pool[0])
    first = recover("run", PLAYBOOK, "--site", site.root, "--yes")
    assert first.exit_code == 1, first.output
    assert "restore the pool directories from backup" in fix_line(first.output)
    shutil.copytree(aside, site.root / pool[0])
    _assert_fixed(recover("run", PLAYBOOK, "--site", site.root, "--yes"))


def test_pool_path_outside_the_site_fix_corrects_the_table(site: Site) -> None:
    with site.db() as conn:
        conn.execute("UPDATE pools SET path = '../elsewhere' WHERE name = 's2'")
    first = recover("run", PLAYBOOK, "--site", site.root, "--yes")
    assert first.exit_code == 1, first.output
    assert "correct the pools table" in fix_line(first.output)
    with site.db() as conn:
        conn.execute("UPDATE pools SET path = 'pools/s2' WHERE name = 's2'")
    _assert_fixed(recover("run", PLAYBOOK, "--site", site.root, "--yes"))


def test_wrong_catalog_fix_points_at_the_repository(site: Site, tmp_path: Path) -> None:
    (site.root / "other").mkdir()
    with sqlite3.connect(site.root / "other" / "other.sqlite") as conn:
        conn.execute("CREATE TABLE unrelated (x)")  # some other database of the site
    other = playbook_copy(
        PLAYBOOK, tmp_path, lambda d: d["site"].update(catalog="other/other.sqlite")
    )
    first = recover("run", other, "--site", site.root, "--yes")
    assert first.exit_code == 1, first.output
    assert "site.catalog" in fix_line(first.output)
    right = playbook_copy(PLAYBOOK, tmp_path, lambda d: d["site"].update(catalog="catalog.sqlite"))
    _assert_fixed(recover("run", right, "--site", site.root, "--yes"))


def test_damaged_pool_file_fix_moves_it_to_lost_found(site: Site) -> None:
    (pool,) = site.query("SELECT path FROM pools WHERE name = 'sdft'")
    victim = next(
        p for p in sorted((site.root / pool[0]).rglob("*.wc")) if "lost+found" not in p.parts
    )
    victim.write_bytes(victim.read_bytes()[:5])  # a torn write
    first = recover("run", PLAYBOOK, "--site", site.root, "--yes")
    assert first.exit_code == 1, first.output
    assert "lost+found" in fix_line(first.output)
    lost = site.root / pool[0] / "lost+found"
    lost.mkdir(exist_ok=True)
    victim.rename(lost / victim.name)
    _assert_fixed(recover("run", PLAYBOOK, "--site", site.root, "--yes"))
