"""The log read ahead in a second process ends exactly like the log read in-process."""

from __future__ import annotations

import os
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.engine.media import MediaStore
from runner.errors import RecoverError
from runner.procedures.roll_forward import reader as reader_module
from runner.procedures.roll_forward import replay as replay_module
from runner.procedures.roll_forward.apply import time_text
from runner.procedures.roll_forward.catalog import StatementCache
from runner.procedures.roll_forward.flags import Restore, SetFlags
from runner.procedures.roll_forward.logset import scan_log_set
from runner.procedures.roll_forward.reader import LogReader, Options, ReplayState, read_ahead
from runner.procedures.roll_forward.recover import Recover
from runner.site import Site
from tests.procedures.roll_forward.conftest import (
    DEFAULT_DBS,
    assert_matches,
    scenario,
    snapshot,
)
from tests.procedures.roll_forward.fake import run_action

DBS = list(DEFAULT_DBS)
SMALL = {"checkpoint_records": 300, "batch_calls": 30, "chunk_records": 50}


def _prepare(site: Path) -> None:
    run_action(SetFlags({"databases": DBS, "access": "disabled", "recovery": "enabled"}), site)
    run_action(Restore({"databases": DBS}), site)


def _outcome(site: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"reports": snapshot(site, "reports")}
    for db in DBS:
        conn = sqlite3.connect(site / "databases" / f"{db}.sqlite")
        out[db] = conn.execute("SELECT * FROM rf_recovery ORDER BY txn").fetchall()
        out[db + ".flags"] = conn.execute("SELECT * FROM rf_flags").fetchall()
        conn.close()
    return out


def _both(make_site, seed: int, args: dict[str, Any], **world: Any) -> list[dict[str, Any]]:
    """Run the same roll forward read inline and read ahead; their outcomes."""
    outcomes = []
    for reader in ("inline", "process"):
        site = make_site(seed=seed, **world)
        _prepare(site)
        given = {"databases": DBS, "log_set": "dblog", **args, "reader": reader}
        if given.get("stop_at") == "stop_case":
            given["stop_at"] = scenario(site)["stop_case"]["stop_at"]
        ctx = run_action(Recover(given), site)
        outcome = _outcome(site)
        outcome["outputs"] = ctx.outputs
        outcome["changes"] = ctx.changes
        outcome["warnings"] = ctx.warnings
        outcomes.append(outcome)
    return outcomes


@pytest.mark.parametrize(
    ("seed", "args", "world"),
    [
        (61, SMALL, {}),  # failures, dependent failures, a damaged tail, rollbacks
        (62, {**SMALL, "batch_calls": 5}, {"transactions": 300}),
        (63, {**SMALL, "stop_at": "stop_case"}, {}),
        (64, {}, {"transactions": 300}),  # default sizes: one batch, one checkpoint
    ],
)
def test_read_ahead_ends_exactly_like_inline(make_site, seed, args, world) -> None:
    inline, ahead = _both(make_site, seed, args, **world)
    assert ahead == inline
    assert any(inline[db] for db in DBS)


def test_spilled_transactions_read_ahead(make_site, monkeypatch) -> None:
    monkeypatch.setattr(replay_module.Options, "spill_calls", 2)
    inline, ahead = _both(make_site, 65, SMALL)
    assert ahead == inline


def test_failing_batch_is_read_again_and_only_the_culprit_is_lost(make_site) -> None:
    """Big batches with failures inside: the batch is re-read, split, and replayed."""
    site = make_site(seed=66, transactions=300)
    _prepare(site)
    run_action(
        Recover({"databases": DBS, "log_set": "dblog", "batch_calls": 500, "reader": "process"}),
        site,
    )
    assert_matches(site)


def test_auto_reads_ahead_only_when_the_log_is_worth_it(make_site, monkeypatch) -> None:
    started = []
    real = replay_module.read_ahead

    def spy(reader: LogReader):  # type: ignore[no-untyped-def]
        started.append(reader.bytes_to_read())
        return real(reader)

    monkeypatch.setattr(replay_module, "read_ahead", spy)
    monkeypatch.setattr(replay_module, "_cores", lambda: 2)
    site = make_site(seed=67)
    _prepare(site)
    run_action(Recover({"databases": DBS, "log_set": "dblog"}), site)
    assert started == []  # a small log: read in-process
    monkeypatch.setattr(replay_module, "READ_AHEAD_BYTES", 1)
    site = make_site(seed=67)
    _prepare(site)
    run_action(Recover({"databases": DBS, "log_set": "dblog"}), site)
    assert len(started) == 1 and started[0] > 0
    assert_matches(site)
    monkeypatch.setattr(replay_module, "_cores", lambda: 1)
    site = make_site(seed=67)
    _prepare(site)
    run_action(Recover({"databases": DBS, "log_set": "dblog"}), site)
    assert len(started) == 1  # one core: nothing to gain


def _reader(site: Path) -> LogReader:
    media = MediaStore(Site(site), dry_run=False)
    logset = scan_log_set(media, "dblog")
    db = sqlite3.connect(":memory:")
    targets = {}
    for name in DBS:
        db.execute(f"ATTACH ? AS db_{name}", (str(site / "databases" / f"{name}.sqlite"),))
        targets[name] = f"db_{name}"
    paths = {n: str(media.path(logset.rel(n))) for n in logset.headers}
    state = ReplayState(targets=targets, pos=[1, 0, 1])
    return LogReader(
        logset, paths, state, Options(flush_calls=10), StatementCache(db, targets.values())
    )


def _no_children_left() -> bool:
    """No reader process left behind, running or unreaped."""
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def test_the_same_messages_cross_the_pipe(make_site) -> None:
    site = make_site(seed=68)
    _prepare(site)
    inline = list(_reader(site).messages())
    ahead = list(read_ahead(_reader(site)))
    assert ahead == inline
    assert [m[0] for m in inline].count("batch") > 3
    assert inline[-1][0] == "end"
    assert _no_children_left()


def test_closing_early_stops_the_reader_process(make_site) -> None:
    site = make_site(seed=69)
    _prepare(site)
    messages = read_ahead(_reader(site))
    assert next(messages)[0] in ("progress", "batch")
    messages.close()
    assert _no_children_left()


def test_a_reader_process_that_fails_is_an_error_not_a_hang(make_site, monkeypatch) -> None:
    def broken(self: LogReader):  # type: ignore[no-untyped-def]
        yield ("progress", 1)
        raise ValueError("boom in the reader")

    monkeypatch.setattr(reader_module.LogReader, "_messages", broken)
    site = make_site(seed=70)
    _prepare(site)
    before = snapshot(site, "databases")
    with pytest.raises(RuntimeError, match=r"log reader process failed(.|\n)*boom in the reader"):
        run_action(Recover({"databases": DBS, "log_set": "dblog", "reader": "process"}), site)
    assert snapshot(site, "databases") == before
    assert _no_children_left()


def test_a_reader_process_killed_is_an_error(make_site, monkeypatch) -> None:
    def killed(self: LogReader):  # type: ignore[no-untyped-def]
        yield ("progress", 1)
        time.sleep(0.05)
        os.kill(os.getpid(), 9)
        yield ("progress", 1)

    monkeypatch.setattr(reader_module.LogReader, "_messages", killed)
    site = make_site(seed=71)
    _prepare(site)
    with pytest.raises(RecoverError, match="log reader process ended unexpectedly"):
        run_action(Recover({"databases": DBS, "log_set": "dblog", "reader": "process"}), site)
    assert _no_children_left()


@given(st.integers(min_value=0, max_value=253_402_300_799_999_999))
def test_time_text_is_iso_utc_to_the_millisecond(us: int) -> None:
    moment = datetime.fromtimestamp(us // 1_000_000, UTC).replace(microsecond=us % 1_000_000)
    assert time_text(us) == moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{us % 1_000_000 // 1000:03d}Z"


@given(st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1))
def test_time_text_never_fails_on_hostile_times(us: int) -> None:
    assert time_text(us)
