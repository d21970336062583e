"""The note's four kinds of damage, each made the way a crash makes it (a live
B-tree file losing some of an operation's writes), then repaired."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.procedures.keyed_file.actions.count import Count
from runner.procedures.keyed_file.actions.reload import Reload
from runner.procedures.keyed_file.actions.repair import Repair
from runner.procedures.keyed_file.actions.verify import Verify
from tests.procedures.keyed_file.conftest import digest
from tests.procedures.keyed_file.emulator import Group, LiveFile
from tests.procedures.keyed_file.fakectx import FakeContext, run_action
from tests.procedures.keyed_file.readback import keys_match_records, read_pair

ARGS = {"data_file": "files/live.dat", "key_file": "files/live.key"}
LENGTHS = (40, 30)


def _values(n: int) -> list[bytes]:
    return [b"%040d" % (n * 7919 % 1000), b"%030d" % (n % 13)]


def _grown(n: int) -> LiveFile:
    live = LiveFile(LENGTHS)
    for i in range(n):
        groups = live.insert(_values(i))
        assert groups is not None
        live.apply(groups)
    return live


def _keep(groups: list[Group], names: set[str]) -> list[bool]:
    return [g.name in names for g in groups]


def _repair(tmp_path: Path, live: LiveFile) -> FakeContext:
    live.save(tmp_path / ARGS["data_file"], tmp_path / ARGS["key_file"])
    return run_action(Repair(ARGS), FakeContext(tmp_path))


def test_eof_records_added_fs_eof_behind(tmp_path: Path) -> None:
    live = _grown(30)
    groups = live.insert(_values(30))
    assert groups is not None
    live.apply(groups, _keep(groups, {"D", "E", "K1", "K2", "C"}))  # FS EOF not written
    out = _repair(tmp_path, live).outputs
    assert out["fs_eof_reset"] and (out["fs_eof"], out["keyed_eof"]) == (30, 31)
    assert not out["reload_needed"] and out["dangling_deleted"] == 0
    assert keys_match_records(read_pair(tmp_path / ARGS["data_file"], tmp_path / ARGS["key_file"]))


def test_dangling_keys_reached_disk_before_the_data(tmp_path: Path) -> None:
    live = _grown(30)
    groups = live.insert(_values(30))
    assert groups is not None
    live.apply(groups, _keep(groups, {"K1", "K2", "C"}))
    out = _repair(tmp_path, live).outputs
    assert out["dangling_per_key"] == [1, 1] and out["key_counts"] == [30, 30]
    assert not out["reload_needed"] and not out["fs_eof_reset"]


def test_split_reached_disk_but_not_the_key_file_eof(tmp_path: Path) -> None:
    live = _grown(0)
    n = 0
    while True:  # insert until the next insert splits a block
        groups = live.insert(_values(n))
        assert groups is not None
        if any(g.name == "C" for g in groups):
            break
        live.apply(groups)
        n += 1
    old_eof = live.control.key_eof
    live.apply(groups, _keep(groups, {"D", "E", "F", "K1", "K2"}))  # every write but C
    pair = read_pair(*_saved(tmp_path, live))
    assert max(max(b) for b in pair.blocks.values()) >= old_eof  # blocks past the EOF
    out = run_action(Repair(ARGS), FakeContext(tmp_path)).outputs
    assert out["key_eof_reset"] and out["key_eof"] == old_eof
    assert out["key_eof_after"] == max(max(b) for b in pair.blocks.values()) + 1
    assert not out["reload_needed"] and out["dangling_deleted"] == 0


def _saved(tmp_path: Path, live: LiveFile) -> tuple[Path, Path]:
    live.save(tmp_path / ARGS["data_file"], tmp_path / ARGS["key_file"])
    return tmp_path / ARGS["data_file"], tmp_path / ARGS["key_file"]


def test_missing_keys_deleting_alternate_key_reached_disk(tmp_path: Path) -> None:
    live = _grown(30)
    groups = live.delete(12)
    live.apply(groups, _keep(groups, {"K2"}))  # key 2 updated; record and key 1 not
    ctx = _repair(tmp_path, live)
    out = ctx.outputs
    assert out["key_counts"] == [30, 29] and out["missing_keys"] == 1
    assert out["reload_needed"] and any("must be reloaded" in w for w in ctx.warnings)


def test_deleted_mark_reached_disk_but_not_the_keys(tmp_path: Path) -> None:
    """Not one of the note's four, but a crash can do it: keys to a deleted record."""
    live = _grown(30)
    groups = live.delete(5)
    live.apply(groups, _keep(groups, {"M"}))
    out = _repair(tmp_path, live).outputs
    assert out["dangling_per_key"] == [1, 1] and out["key_counts"] == [29, 29]
    assert not out["reload_needed"]


@pytest.mark.parametrize("action", [Verify, Repair])
def test_dry_run_changes_nothing_and_predicts_the_run(tmp_path: Path, action: type[Verify]) -> None:
    live = _grown(40)
    groups = live.insert(_values(40))
    assert groups is not None
    live.apply(groups, _keep(groups, {"D", "E", "K2"}))
    _saved(tmp_path, live)
    before = digest(tmp_path)
    args = {**ARGS, "no_check": True} if action is Verify else ARGS
    planned = run_action(action(args), FakeContext(tmp_path, dry_run=True))
    assert digest(tmp_path) == before
    real = run_action(action(args), FakeContext(tmp_path))
    assert planned.outputs == real.outputs and planned.changes == real.changes


def test_resumed_repair_reports_what_the_first_attempt_found(tmp_path: Path) -> None:
    """After a kill the step runs again with its checkpoint: the report and counts
    describe the damaged pair, though the files may already be half repaired."""
    live = _grown(30)
    groups = live.insert(_values(30))
    assert groups is not None
    live.apply(groups, _keep(groups, {"D", "E", "K1"}))
    _saved(tmp_path, live)
    first = run_action(Repair(ARGS), FakeContext(tmp_path))
    assert len(first.checkpoints) == 1
    files = digest(tmp_path, under="files")
    again = run_action(Repair(ARGS), FakeContext(tmp_path, state=first.checkpoints[0]))
    assert again.checkpoints == []  # the findings were already committed
    assert again.outputs == first.outputs and again.changes == first.changes
    assert digest(tmp_path, under="files") == files  # same clock, same bytes
    reports = sorted((tmp_path / "reports").iterdir())
    assert reports[0].read_text() == reports[1].read_text()


def test_count_reads_a_crashed_file_only_with_no_check(tmp_path: Path) -> None:
    live = _grown(25)
    groups = live.delete(3)
    live.apply(groups, _keep(groups, {"K1"}))  # key 1 lost record 3's value
    _saved(tmp_path, live)
    checks = {c.name: c for c in Count(ARGS).check(FakeContext(tmp_path))}  # type: ignore[arg-type]
    assert not checks["crash flag clear"].ok
    assert "no_check" in (checks["crash flag clear"].fix or "")
    ctx = run_action(Count({**ARGS, "no_check": True}), FakeContext(tmp_path))
    assert ctx.outputs == {"count": 24, "valid_records": 25, "agrees": False}
    ctx = run_action(Count({**ARGS, "no_check": True, "key": 2}), FakeContext(tmp_path))
    assert ctx.outputs["count"] == 25


def test_reload_options_backup_block_size_and_fill(tmp_path: Path) -> None:
    live = _grown(60)
    live.close()
    data, key = _saved(tmp_path, live)
    args = {**ARGS, "backup": False, "sectors_per_block": 2, "fill_percent": 50}
    ctx = run_action(Reload(args), FakeContext(tmp_path))
    assert sorted(p.name for p in data.parent.iterdir()) == ["live.dat", "live.key"]
    pair = read_pair(data, key)
    assert pair.spb == 2 and keys_match_records(pair) and not pair.crashed
    assert pair.last_reset_user and pair.last_reset > 0
    assert ctx.outputs == {"records": 60, "deleted_dropped": 0, "key_values": [60, 60]}


def test_reload_refuses_blocks_too_small_for_a_key(tmp_path: Path) -> None:
    live = LiveFile((250,), spb=4)
    for i in range(5):
        groups = live.insert([b"%0250d" % i])
        assert groups is not None
        live.apply(groups)
    live.close()
    _saved(tmp_path, live)
    small = Reload({**ARGS, "sectors_per_block": 1}).check(FakeContext(tmp_path))  # type: ignore[arg-type]
    checks = {c.name: c for c in small}
    assert not checks["1-sector key blocks hold every key"].ok
    enough = Reload({**ARGS, "sectors_per_block": 2}).check(FakeContext(tmp_path))  # type: ignore[arg-type]
    assert all(c.ok for c in enough)
