"""Issue 13 item 5 on a site built by hand from docs/case_archive.md alone: the
restored case holds relative symbolic links to the common data, inside the site;
a common data directory leading outside the site is refused."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from runner.procedures.case_archive.catalog import DDL
from tests.helpers import step_outputs

from .conftest import playbook, recover
from .handmade import COMMON, FILES, build, doc_ddl

RESTORE = {
    "id": "restore",
    "action": "cases.restore",
    "args": {"session": "hand case", "case": "hand made"},
}


def _schema(ddl: str) -> list[tuple[str, str]]:
    conn = sqlite3.connect(":memory:")
    conn.executescript(ddl)
    rows = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name"
    ).fetchall()
    conn.close()
    return [(name, " ".join(sql.split()).replace("IF NOT EXISTS ", "")) for name, sql in rows]


def test_the_docs_ddl_is_the_catalogs() -> None:
    strip = lambda s: "\n".join(line.split("--")[0] for line in s.splitlines())  # noqa: E731
    assert _schema(strip(doc_ddl())) == _schema(strip(DDL))


def test_restore_on_a_handmade_site_links_the_common_data_inside_the_site(tmp_path: Path) -> None:
    root = tmp_path / "site"
    build(root)
    result = recover("run", playbook(tmp_path, [RESTORE]), "--site", root, "--yes")
    assert result.exit_code == 0, result.output
    done = step_outputs(root, "restore")
    assert (done["from_tape"], done["from_cache"], done["corrupt"]) == (3, 1, 0)
    case = root / "restore" / "hand_made"
    for rel, (_p, _t, data) in FILES.items():
        assert (case / rel).read_bytes() == data
    assert not (case / "LINKS").exists()
    for common in COMMON:
        link = case / common.rsplit("/", 1)[-1]
        assert link.is_symlink()
        target = os.readlink(link)
        assert not os.path.isabs(target) and target == f"../../{common}"
        assert link.resolve() == (root / common).resolve()
        assert link.resolve().is_relative_to(root.resolve())
        assert (link / "README").read_text() == f"common data {common}\n"
    conn = sqlite3.connect(root / "catalog.sqlite")
    assert conn.execute("SELECT name, directory, files FROM cases").fetchall() == [
        ("hand made", "restore/hand_made", len(FILES))
    ]
    conn.close()


def test_a_common_directory_leading_outside_the_site_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "site"
    outside = tmp_path / "outside"
    outside.mkdir()
    build(root, ["common/maps", "common/elsewhere"])
    (root / "common" / "elsewhere").symlink_to(outside)
    result = recover("run", playbook(tmp_path, [RESTORE]), "--site", root, "--yes")
    assert result.exit_code == 1, result.output
    assert "the common data links stay inside the site" in result.output
    assert "resolves outside the site" in result.output
    assert not (root / "restore" / "hand_made").exists()
    # the printed fix, followed, lets the re-run succeed
    assert "set common_dirs to directories inside the site" in result.output
    conn = sqlite3.connect(root / "catalog.sqlite")
    with conn:
        conn.execute("UPDATE settings SET value = '[\"common/maps\"]' WHERE key = 'common_dirs'")
    conn.close()
    result = recover("run", playbook(tmp_path, [RESTORE]), "--site", root, "--yes")
    assert result.exit_code == 0, result.output
    assert os.readlink(root / "restore" / "hand_made" / "maps") == "../../common/maps"
