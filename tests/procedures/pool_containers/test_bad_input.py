"""Bad input gives a clear error (exit 1, no traceback) and changes nothing."""

from __future__ import annotations

import shutil
from collections.abc import Callable

import pytest

from .conftest import Site, run_playbook, snapshot


def referenced(site: Site, category: str = "corrupt_ref") -> tuple[str, str]:
    """(element path, site path of its referenced container) for a present container."""
    path = site.scenario["categories"][category][0]
    pool, rel = site.query(
        """SELECT c.pool, c.relpath FROM containers c JOIN elements e ON e.id = c.element_id
           WHERE e.path = ? ORDER BY c.id LIMIT 1""",
        path,
    )[0]
    return path, f"pools/{pool}/{rel}"


def healthy_container(site: Site) -> str:
    damaged = set(site.scenario["damaged"])
    for path, pool, rel in site.query(
        """SELECT e.path, c.pool, c.relpath FROM containers c
           JOIN elements e ON e.id = c.element_id ORDER BY c.id"""
    ):
        if path not in damaged:
            return f"pools/{pool}/{rel}"
    raise AssertionError("no healthy container")


def wrong_identity(site: Site) -> None:
    _path, target = referenced(site)
    source = healthy_container(site)
    shutil.copyfile(site.root / source, site.root / target)


def truncated_referenced(site: Site) -> None:
    target = site.root / healthy_container(site)
    target.write_bytes(target.read_bytes()[:-7])


def truncated_alternate(site: Site) -> None:
    alternates = sorted((site.root / "pools" / "s2").rglob("*.*"))
    referenced_names = {r for (r,) in site.query("SELECT relpath FROM containers")}
    spare = next(
        p
        for p in alternates
        if p.relative_to(site.root / "pools" / "s2").as_posix() not in referenced_names
        and "lost+found" not in p.parts
    )
    spare.write_bytes(spare.read_bytes()[:30])


def not_a_container(site: Site) -> None:
    (site.root / "pools" / "sdft" / "README").write_text("left here by someone\n")


def escaping_pool(site: Site) -> None:
    conn = site.db()
    with conn:
        conn.execute("UPDATE pools SET path = '../../elsewhere' WHERE name = 's2'")
    conn.close()


def absolute_pool(site: Site) -> None:
    conn = site.db()
    with conn:
        conn.execute("UPDATE pools SET path = '/etc' WHERE name = 's2'")
    conn.close()


def missing_pool(site: Site) -> None:
    shutil.rmtree(site.root / "pools" / "s2")


def linked_out(site: Site) -> None:
    """A symbolic link in a pool that leads out of the site."""
    (site.root / "pools" / "sdft" / "00").mkdir(exist_ok=True)
    (site.root / "pools" / "sdft" / "00" / "evil.dlt").symlink_to("/etc/hostname")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (wrong_identity, "wrong identity"),
        (truncated_referenced, "truncated"),
        (truncated_alternate, "truncated"),
        (not_a_container, "not a pool container"),
        (escaping_pool, "leaves the site"),
        (absolute_pool, "is absolute"),
        (missing_pool, "pool directories exist"),
        (linked_out, "outside the site"),
    ],
)
def test_damaged_site(site: Site, damage: Callable[[Site], None], message: str) -> None:
    damage(site)
    before = snapshot(site.root)
    result = run_playbook(site)
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert snapshot(site.root) == before


@pytest.mark.parametrize(
    ("since", "message"),
    [
        ("2026-02-01T00:00:00+00:00", "in the future"),
        ("tomorrow", "not a date-time"),
        ("2026-01-14T25:00", "not a date-time"),
    ],
)
def test_bad_window(site: Site, since: str, message: str) -> None:
    before = snapshot(site.root)
    result = run_playbook(site, since=since)
    assert result.exit_code == 1, result.output
    assert message in result.output and "fix:" in result.output
    files, catalog = snapshot(site.root)
    assert catalog == before[1]
    assert {k: v for k, v in files.items() if not k.startswith("reports/")} == before[0]


def test_catalog_without_pool_tables(site: Site) -> None:
    conn = site.db()
    with conn:
        conn.execute("DROP TABLE container_versions")
    conn.close()
    before = snapshot(site.root)
    result = run_playbook(site)
    assert result.exit_code == 1 and "missing tables: container_versions" in result.output
    assert snapshot(site.root) == before
