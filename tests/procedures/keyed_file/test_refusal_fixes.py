"""Issue 13 item 4: each refusal's printed fix, followed literally, lets the re-run succeed.

Every refusal keyed-file-repair can give on a generated site is triggered through the
CLI, the `fix:` line is followed as an operator would, and the same command is run again.
Not covered: the "restore the keyed file pair from a backup" errors (a header, control
block or key block that is corrupt beyond repair) need hand-corrupted files, and
"report this as a bug" is no operator fix.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tests.helpers import fix_line, playbook_copy
from tests.procedures.keyed_file.conftest import PLAYBOOK, SiteMaker, recover, steps


def _step(doc: dict[str, Any], step_id: str) -> dict[str, Any]:
    return next(s for s in doc["steps"] if s["id"] == step_id)


def _assert_done(site: Path, result: Any) -> None:
    assert result.exit_code == 0, result.output
    assert all(s["state"] in ("done", "skipped") for s in steps(site).values())
    assert steps(site)["count"]["state"] == "done"


def test_confirmation_refusal_fix_is_yes(make_site: SiteMaker) -> None:
    site, _ = make_site(records=400, damage=("eof", "missing"))
    first = recover("run", PLAYBOOK, "--site", site)
    assert first.exit_code == 3
    assert "--yes" in fix_line(first.output)
    _assert_done(site, recover("run", PLAYBOOK, "--site", site, "--yes"))


def test_missing_file_fix_supply_it(make_site: SiteMaker, tmp_path: Path) -> None:
    site, _ = make_site(records=400, damage=("dangling",))
    aside = tmp_path / "customers.key"
    shutil.move(site / "files" / "customers.key", aside)
    first = recover("run", PLAYBOOK, "--site", site, "--yes")
    assert first.exit_code == 1
    assert "key file files/customers.key exists: missing" in first.output
    assert "key_file" in fix_line(first.output)
    shutil.move(aside, site / "files" / "customers.key")
    _assert_done(site, recover("run", PLAYBOOK, "--site", site, "--yes"))


def test_wrong_path_fix_names_the_param(make_site: SiteMaker) -> None:
    site, _ = make_site(records=400, damage=("eof",))
    first = recover("run", PLAYBOOK, "--site", site, "--yes", "--param", "data_file=files/c.dat")
    assert first.exit_code == 1
    assert "--param data_file=" in fix_line(first.output)
    run = recover(
        "run", PLAYBOOK, "--site", site, "--yes", "--param", "data_file=files/customers.dat"
    )
    _assert_done(site, run)


def test_same_file_twice_fix_names_the_pair(make_site: SiteMaker) -> None:
    site, _ = make_site(records=400, damage=("eof",))
    first = recover(
        "run", PLAYBOOK, "--site", site, "--yes", "--param", "key_file=files/customers.dat"
    )
    assert first.exit_code == 1
    assert "name the .dat and the .key file of the pair" in fix_line(first.output)
    run = recover(
        "run", PLAYBOOK, "--site", site, "--yes", "--param", "key_file=files/customers.key"
    )
    _assert_done(site, run)


def test_reload_before_repair_fix_moves_the_step(make_site: SiteMaker, tmp_path: Path) -> None:
    site, _ = make_site(records=400, damage=("missing",))

    def swap(doc: dict[str, Any]) -> None:
        order = [s["id"] for s in doc["steps"]]
        i, j = order.index("repair"), order.index("reload")
        doc["steps"][i], doc["steps"][j] = doc["steps"][j], doc["steps"][i]
        del doc["steps"][i]["when"]

    bad = playbook_copy(PLAYBOOK, tmp_path, swap)
    first = recover("run", bad, "--site", site, "--yes")
    assert first.exit_code == 1
    assert "move the repair step before the reload step" in fix_line(first.output)
    _assert_done(site, recover("run", PLAYBOOK, "--site", site, "--yes"))


def test_crashed_file_fix_no_check_or_repair(make_site: SiteMaker, tmp_path: Path) -> None:
    site, _ = make_site(records=400, damage=("eof",))

    def without_repair(doc: dict[str, Any]) -> None:
        doc["steps"] = [s for s in doc["steps"] if s["id"] in ("verify", "count")]

    bad = playbook_copy(PLAYBOOK, tmp_path, without_repair)
    first = recover("run", bad, "--site", site, "--yes")
    assert first.exit_code == 1
    fix = fix_line(first.output)
    assert "no_check: true" in fix

    def read_as_is(doc: dict[str, Any]) -> None:
        without_repair(doc)
        _step(doc, "count")["args"]["no_check"] = True

    followed = playbook_copy(PLAYBOOK, tmp_path, read_as_is)
    result = recover("run", followed, "--site", site, "--yes")
    assert result.exit_code == 0, result.output
    assert steps(site)["count"]["state"] == "done"


def test_key_number_fix(make_site: SiteMaker, tmp_path: Path) -> None:
    site, _ = make_site(records=400, keys=2, damage=("eof",))
    bad = playbook_copy(PLAYBOOK, tmp_path, lambda d: _step(d, "count")["args"].update(key=5))
    first = recover("run", bad, "--site", site, "--yes")
    assert first.exit_code == 1
    assert "set `key` to a key number the file has" in fix_line(first.output)
    good = playbook_copy(PLAYBOOK, tmp_path, lambda d: _step(d, "count")["args"].update(key=2))
    _assert_done(site, recover("run", good, "--site", site, "--yes"))


def test_sectors_per_block_fix_names_the_range(make_site: SiteMaker, tmp_path: Path) -> None:
    site, _ = make_site(records=300, keys=2, key_lengths=(250, 10), damage=("missing",))
    bad = playbook_copy(
        PLAYBOOK, tmp_path, lambda d: _step(d, "reload")["args"].update(sectors_per_block=1)
    )
    first = recover("run", bad, "--site", site, "--yes")
    assert first.exit_code == 1
    fix = fix_line(first.output)
    assert "choose sectors_per_block from 2 to 64" in fix, fix
    good = playbook_copy(
        PLAYBOOK, tmp_path, lambda d: _step(d, "reload")["args"].update(sectors_per_block=2)
    )
    _assert_done(site, recover("run", good, "--site", site, "--yes"))
