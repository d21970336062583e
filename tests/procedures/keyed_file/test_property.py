"""Property: any inserts and deletes, a crash at any point, then repair (and reload
when it warns) leaves keys that match the valid records exactly."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from runner.procedures.keyed_file.actions.count import Count
from runner.procedures.keyed_file.actions.reload import Reload
from runner.procedures.keyed_file.actions.repair import Repair
from tests.procedures.keyed_file.emulator import LiveFile
from tests.procedures.keyed_file.fakectx import FakeContext, run_action
from tests.procedures.keyed_file.readback import expected_entries, keys_match_records, read_pair

ARGS = {"data_file": "files/live.dat", "key_file": "files/live.key"}
LENGTHS = (56, 40, 60)  # long keys in 1-sector blocks: 7-11 entries a block, deep trees


@st.composite
def histories(draw: st.DrawFn) -> tuple[int, list[tuple[str, object]], int, list[bool]]:
    nkeys = draw(st.integers(1, 3))
    insert = st.tuples(
        st.just("ins"), st.lists(st.integers(0, 300), min_size=nkeys, max_size=nkeys)
    )
    delete = st.tuples(st.just("del"), st.integers(0, 10_000))
    ops = draw(
        st.lists(
            st.one_of(insert, insert, insert, delete),
            min_size=draw(st.integers(0, 60)),
            max_size=80,
        )
    )
    crash = draw(st.one_of(st.integers(0, len(ops)), st.just(max(0, len(ops) - 1))))
    survived = draw(st.lists(st.booleans(), min_size=12, max_size=12))
    return nkeys, ops, crash, survived


def play(nkeys: int, ops: list[tuple[str, object]], crash: int, survived: list[bool]) -> LiveFile:
    live = LiveFile(LENGTHS[:nkeys])
    alive: list[int] = []
    for index, (kind, arg) in enumerate(ops):
        if kind == "ins":
            values = [b"%0*d" % (LENGTHS[k], v) for k, v in enumerate(arg)]  # type: ignore[arg-type]
            recno = live.header.keyed_eof
            groups = live.insert(values)
            if groups is None:
                continue
        else:
            if not alive:
                continue
            recno = alive[int(arg) % len(alive)]  # type: ignore[call-overload]
            groups = live.delete(recno)
        if index == crash:
            live.apply(groups, survived[: len(groups)] + [True] * (len(groups) - 12))
            return live  # the system failed during this operation
        live.apply(groups)
        if kind == "ins":
            alive.append(recno)
        else:
            alive.remove(recno)
    return live  # failed after the last operation, file still open (crash flag set)


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(histories())
def test_crash_then_repair_and_reload_leaves_exact_keys(
    history: tuple[int, list[tuple[str, object]], int, list[bool]],
) -> None:
    live = play(*history)
    root = Path(tempfile.mkdtemp(prefix="keyed-prop-"))
    try:
        site_dat, site_key = root / ARGS["data_file"], root / ARGS["key_file"]
        live.save(site_dat, site_key)
        before = read_pair(site_dat, site_key)
        valid = sum(1 for mark, _ in before.records if mark == 0)
        repair = run_action(Repair(ARGS), FakeContext(root))
        out = repair.outputs
        for name in ("fs_eof_reset", "key_eof_reset", "reload_needed"):
            event(f"{name}={out[name]}")
        event(f"dangling={out['dangling_deleted'] > 0}")
        event(f"levels>1={max(len(b) for b in before.blocks.values()) > 1}")
        after = read_pair(site_dat, site_key)
        assert not after.crashed
        assert after.fs_eof >= after.keyed_eof
        assert after.key_eof >= max(max(b) for b in after.blocks.values()) + after.spb
        # every key value left points to a valid record with that value
        for key_no, tree in after.trees.items():
            wanted = set(expected_entries(after, key_no))
            assert set(tree) <= wanted
        if not repair.outputs["reload_needed"]:
            assert keys_match_records(after)
            assert repair.outputs["missing_keys"] == 0
        else:
            assert repair.warnings
            run_action(Reload(ARGS), FakeContext(root))
            reloaded = read_pair(site_dat, site_key)
            assert keys_match_records(reloaded)
            assert reloaded.keyed_eof == reloaded.fs_eof == valid
            assert all(mark == 0 for mark, _ in reloaded.records)
            assert sorted(p for _, p in reloaded.records) == sorted(
                p for m, p in before.records if m == 0
            )
        count = run_action(Count(ARGS), FakeContext(root))
        assert count.outputs["count"] == valid
    finally:
        shutil.rmtree(root)
