"""A deterministic roll-forward site: databases, backups, a crashed log set, the truth.

Several databases log to one log set while many users work concurrently; each
user owns its rows (as record locks would guarantee), so applying completed
transactions in commit order reproduces the original exactly. The generator
keeps the truth in plain dicts, applying each completed transaction the way
the rules say (a failing call suppresses its whole transaction), and writes it
as expected/<db>.sqlite. Planted on purpose: a transaction left open at the
crash whose insert a completed transaction of another user then updates (it
fails on replay: "dependent"), a third depending on that one, programs that
roll back, and a torn or checksum-broken tail.
"""

from __future__ import annotations

import itertools
import json
import random
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from runner.procedures.roll_forward import media as m
from runner.procedures.roll_forward.catalog import FLAGS_DDL, ONLINE_DDL, stamp_text
from runner.procedures.roll_forward.world.scenario import Truth, outcome
from runner.procedures.roll_forward.world.workload import (
    BASE_TIME,
    SCHEMAS,
    SET_NAME,
    columns,
    make_users,
    make_values,
    write_log,
)
from runner.worlds import option

TAILS = ("checksum", "sequence", "torn", "clean")


def _at_least(low: int) -> Callable[[str], int]:
    """An integer option with a floor (what click.IntRange(low) said before)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a valid integer.") from None
        if value < low:
            raise ValueError(f"{value} is not in the range x>={low}.")
        return value

    return parse


def _one_of(choices: tuple[str, ...]) -> Callable[[str], str]:
    """A text option from a fixed list (what click.Choice said before)."""

    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"{text!r} is not one of {', '.join(map(repr, choices))}.")
        return text

    return parse


_DATABASES = tuple(sorted(SCHEMAS))


@dataclass
class Options:
    seed: int = option(1, "random seed")
    transactions: int = option(
        400,
        "transactions started in the logging cycle (at least 10)",
        parse=_at_least(10),
        metavar="N",
    )
    users: int = option(
        12, "users writing concurrently (at least 4)", parse=_at_least(4), metavar="N"
    )
    concurrency: int = option(
        6, "transactions open at the same time (at least 1)", parse=_at_least(1), metavar="N"
    )
    files: int = option(
        4, "about how many log files the set spans (at least 1)", parse=_at_least(1), metavar="N"
    )
    tail: str = option(
        "checksum",
        "how the log ends at the crash",
        parse=_one_of(TAILS),
        metavar=f"[{'|'.join(TAILS)}]",
    )
    drop_log_file: int | None = option(
        None,
        "move file K of the set to spare/ (the run must stop and ask for it; K at least 2)",
        parse=_at_least(2),
        metavar="K",
    )
    mismatch_stamp: str | None = option(
        None,
        "give this database's backup copy a stamp that does not match the log",
        parse=_one_of(_DATABASES),
        metavar=f"[{'|'.join(_DATABASES)}]",
    )
    foreign_backup: str | None = option(
        None,
        "mark this database's backup copy as not made by the store utility",
        parse=_one_of(_DATABASES),
        metavar=f"[{'|'.join(_DATABASES)}]",
    )
    rows: int = option(
        40, "rows per table in the backup copies (at least 1)", parse=_at_least(1), metavar="N"
    )
    crash_record: bool = option(
        True,
        "end the newest log file with the restart's crash record (turn off: no restart "
        "recovery was done after the failure)",
    )
    online_backup: bool = option(
        False,
        "also take an online backup copy mid-cycle, at a quiesce point (backups-online/)",
    )
    expected: bool = option(True, "write expected/ and expected-stop/ (turn off for big sites)")


def generate(root: Path, opt: Options) -> dict[str, Any]:
    """Generate the site under `root`; returns (and writes) scenario.json."""
    rng = random.Random(opt.seed)
    root.mkdir(parents=True, exist_ok=True)
    for sub in (
        "databases",
        "backups",
        "backups-online",
        "logs",
        "expected",
        "expected-stop",
        "spare",
    ):
        shutil.rmtree(root / sub, ignore_errors=True)
    logging_id = 7000 + opt.seed
    cycle_start = BASE_TIME + timedelta(minutes=opt.seed % 10_000)  # one cycle per seed
    backup_time = cycle_start - timedelta(minutes=7)
    initial: dict[str, dict[str, dict[int, list[Any]]]] = {}
    for db, tables in SCHEMAS.items():
        initial[db] = {}
        for table in tables:
            initial[db][table] = {
                k: make_values(rng, db, table, k, backup_time) for k in range(1, opt.rows + 1)
            }
    users = make_users(opt, initial)
    stamps = {db: (m.to_us(backup_time), True) for db in SCHEMAS}
    plans, records, last_time_us, online = write_log(
        root, opt, rng, users, logging_id, stamps, cycle_start
    )
    scenario = outcome(opt, plans, initial, records, last_time_us, logging_id, root)
    scenario["online_backup"] = None
    if online is not None:
        # The copy holds every transaction that ended before the quiesce point.
        truth = Truth(initial)
        ended = (p for p in plans if p.outcome == "committed" and p.end_seq is not None)
        for plan in sorted(ended, key=lambda p: p.end_seq or 0):
            if (plan.end_seq or 0) <= online.log_record:
                assert truth.apply(plan), "no failing transaction ends before the quiesce point"
        online_stamp = stamp_text(m.from_us(online.time_us))
        for db in SCHEMAS:
            flags = dict(
                _FLAGS,
                database=db,
                recovery="disabled" if db == "audit" else "enabled",
                access="enabled",  # taken while the database was open
                backup_stamp=online_stamp,
                backup_by_store=1,
            )
            point = {
                "backup_stamp": online_stamp,
                "logging_id": logging_id,
                "log_file": online.log_file,
                "log_record": online.log_record,
            }
            _write_db(root / "backups-online" / f"{db}.sqlite", db, truth.tables[db], flags, point)
        scenario["online_backup"] = {
            "stamp": online_stamp,
            "log_file": m.log_name(SET_NAME, online.log_file),
            "log_record": online.log_record,
        }
    for db in SCHEMAS:
        stamp = backup_time - timedelta(days=1) if db == opt.mismatch_stamp else backup_time
        flags = {
            "database": db,
            "access": "disabled",
            "recovery": "disabled" if db == "audit" else "enabled",
            "must_recover": "enabled",
            "logging": "enabled",
            "log_set": SET_NAME,
            "backup_stamp": stamp_text(stamp),
            "backup_by_store": int(db != opt.foreign_backup),
            "modified": 0,
            "open_count": 0,
            "total_opens": 0,
        }
        _write_db(root / "backups" / f"{db}.sqlite", db, initial[db], flags)
        damaged = _damage(rng, scenario["_truth"][db])
        live = dict(
            flags,
            access="enabled",
            must_recover="disabled",
            modified=1,
            open_count=0,
            total_opens=rng.randint(40, 400),
            recovery="disabled" if db == "audit" else "enabled",
            backup_stamp=stamp_text(backup_time),
        )
        _write_db(root / "databases" / f"{db}.sqlite", db, damaged, live)
        if opt.expected:
            _write_db(root / "expected" / f"{db}.sqlite", db, scenario["_truth"][db], None)
            _write_db(
                root / "expected-stop" / f"{db}.sqlite", db, scenario["_truth_stop"][db], None
            )
    del scenario["_truth"], scenario["_truth_stop"]
    if opt.drop_log_file:
        spare = root / "spare"
        spare.mkdir(exist_ok=True)
        name = Path(m.log_name(SET_NAME, opt.drop_log_file)).name
        shutil.move(root / "logs" / name, spare / name)
    (root / "scenario.json").write_text(json.dumps(scenario, indent=2, sort_keys=True) + "\n")
    return scenario


_FLAGS = {
    "must_recover": "disabled",
    "logging": "enabled",
    "log_set": SET_NAME,
    "modified": 0,
    "open_count": 0,
    "total_opens": 0,
}


def _damage(rng: random.Random, tables: dict[str, dict[int, list[Any]]]) -> dict[str, Any]:
    """The live database after the crash: some rows garbled, some lost."""
    out = {}
    for table, rows in tables.items():
        kept = {}
        for key, row in rows.items():
            roll = rng.random()
            if roll < 0.1:
                continue
            kept[key] = ["#garbled#" if (roll < 0.2 and isinstance(v, str)) else v for v in row]
        out[table] = kept
    return out


def _write_db(
    path: Path,
    db: str,
    tables: dict[str, dict[int, list[Any]]],
    flags: dict[str, Any] | None,
    online: dict[str, Any] | None = None,
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path)
    try:
        import sqlite_utils  # here: its import costs every `recover` command ~0.1 s

        site = sqlite_utils.Database(conn, execute_plugins=False)
        for table, (cols, indexes) in SCHEMAS[db].items():
            # The workload's DDL text, as the backups have always had it (restore
            # copies it from their sqlite_master); the rows in bulk.
            conn.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, {cols})")
            for i, index in enumerate(indexes):
                conn.execute(f"CREATE INDEX {table}_ix{i} ON {table} ({index})")
            if not conn.in_transaction:
                # One transaction for every row, begun where sqlite3 would begin it
                # for a plain INSERT: the same commits, so the same file, byte for byte.
                conn.execute("BEGIN")
            rows = ([key, *row] for key, row in sorted(tables[table].items()))
            site.table(table).insert_all(
                itertools.chain([["id", *columns(db, table)]], rows), batch_size=500
            )
        if flags is not None:
            # rf_flags keeps its DDL text: sqlite-utils cannot write its CHECK
            # constraints (one row, enabled/disabled values).
            conn.execute(FLAGS_DDL.format(schema=""))
            site.table("rf_flags").insert({"id": 1, **flags})
        if online is not None:
            conn.execute(ONLINE_DDL.format(schema=""))
            site.table("rf_online_backup").insert({"id": 1, **online})
        conn.commit()
    finally:
        conn.close()
