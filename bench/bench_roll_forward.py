"""Benchmark: roll forward a log set of >= 1 million records through the runner.

Builds a site with the world generator, restores the databases, then times
`recover run` of a recover-only playbook in a subprocess (its peak RSS comes
from wait4) against, in the same run on fresh restored copies:

- the strong baseline (the target, runner within 1.5x): what an expert would
  write by hand, single process, timed from the first byte of the log. It
  parses the log set as documented (records framed with struct and their CRC
  checked; identities, begins, calls and ends decoded; one json.loads per
  transaction's values), groups the calls of the transactions the runner
  applied into waves (each row sees its calls in log order; calls on different
  rows share one executemany per statement, over the whole log, so fewer groups
  than the runner's per-batch ones), sorts each group by integer key, and runs
  it all in ONE transaction with the runner's pragmas (synchronous=FULL,
  journal_mode=DELETE, its page cache) and temp_store=MEMORY (which the runner
  leaves at FILE, so that its memory stays flat), bulk-inserting the
  applied transactions' rf_recovery rows with their times made by SQLite. It
  needs no failure handling (it applies exactly what the runner applied). The
  databases' content and the applied rf_recovery rows must equal the runner's.
- the old baselines, as extra rows: the applied calls parsed beforehand (not
  timed) and applied with executemany per run of consecutive same-statement
  calls (raw), grouped as the runner groups them (grouped raw), or with the
  runner's page cache (raw+cache).

Memory is shown for two log sizes.

    python bench/bench_roll_forward.py [--scale 0.1] [--keep DIR]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import zlib
from operator import itemgetter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    Target,
    child_env,
    measure,
    record,
    recover,
    step_seconds,
)
from runner.procedures.roll_forward import media as m  # noqa: E402
from runner.procedures.roll_forward.catalog import (  # noqa: E402
    RECOVERY_DDL,
    StatementCache,
)
from runner.procedures.roll_forward.replay import CACHE_KIB  # noqa: E402

DBS = ["sales", "stock", "staff", "audit"]
RECORDS_PER_TXN = 5.6  # what the world writes on average (calls + begin + end + time)
PREPARE = """version: 1
name: bench-prepare
steps:
  - id: close
    action: rollforward.set_flags
    args: {databases: %(dbs)s, access: disabled, recovery: enabled}
  - id: restore
    action: rollforward.restore
    args: {databases: %(dbs)s}
"""
RECOVER = """version: 1
name: bench-recover
safety:
  allow_loss: {transactions: unlimited}
steps:
  - id: recover
    action: rollforward.recover
    args: {databases: %(dbs)s, log_set: dblog}
"""


def _cli(site: Path, playbook: Path) -> tuple[float, int]:
    """Run `recover run` in a child; returns (wall seconds, peak RSS KiB)."""
    done = measure(
        recover("run", playbook, "--site", site, "--yes"),
        child_env(RECOVER_NOW="2026-01-06T09:00:00+00:00"),
    )
    return done.seconds, done.rss_kib


def _applied(site: Path) -> tuple[set[int], int]:
    txns: set[int] = set()
    calls = 0
    for db in DBS:
        conn = sqlite3.connect(site / "databases" / f"{db}.sqlite")
        for txn, n in conn.execute("SELECT txn, calls FROM rf_recovery WHERE status='applied'"):
            txns.add(txn)
            calls += n
        conn.close()
    return txns, calls


def _preparse(site: Path, applied: set[int]) -> tuple[list[Any], list[Any]]:
    """The applied calls in commit order as (sql, [params...]) runs of consecutive
    same-statement calls, and the same calls grouped into waves. Not timed."""
    db_of: dict[int, str] = {}
    buffers: dict[int, list[tuple[int, bytes, bytes]]] = {}
    ordered: list[tuple[str, int, bytes, list[Any]]] = []
    conn = sqlite3.connect(":memory:")
    for db in DBS:
        conn.execute(f"ATTACH ? AS db_{db}", (str(site / "databases" / f"{db}.sqlite"),))
    stmts = StatementCache(conn, [f"db_{db}" for db in DBS])
    n = 1
    seq = 1
    while (site / "logs" / f"dblog.{n}.log").exists():
        with (site / "logs" / f"dblog.{n}.log").open("rb") as handle:
            header = m.read_header(handle, "x")
            for chunk in m.iter_chunks(handle, n, header.size, seq):
                for rseq, rtype, payload, _off in chunk.records:
                    seq = rseq + 1
                    if rtype == m.BEGIN:
                        txn = m.BEGIN_P.unpack_from(payload)[0]
                        if txn in applied:
                            db_of[txn] = payload[m.BEGIN_P.size :].decode()
                            buffers[txn] = []
                    elif m.PUT <= rtype <= m.DELETE:
                        txn, dlen = m.CALL_P.unpack_from(payload)
                        if txn in buffers:
                            buffers[txn].append((rtype, payload[6 : 6 + dlen], payload[6 + dlen :]))
                    elif rtype == m.END:
                        txn = m.END_P.unpack_from(payload)[0]
                        for rtype_, desc, raw in buffers.pop(txn, []):
                            sql = stmts.get(f"db_{db_of[txn]}", rtype_, desc).sql
                            assert sql is not None
                            ordered.append((sql, db_of[txn], desc, json.loads(raw)))
        n += 1
    conn.close()
    runs: list[tuple[str, list[list[Any]]]] = []
    for sql, _t, _d, params in ordered:
        if runs and runs[-1][0] == sql:
            runs[-1][1].append(params)
        else:
            runs.append((sql, [params]))
    # The same calls grouped as far as per-row order allows (what the runner does).
    waves: list[dict[str, list[list[Any]]]] = [{}]
    last: dict[tuple[Any, ...], tuple[int, str]] = {}
    for sql, db, desc, params in ordered:
        rowkey = (db, desc.split(b"(", 1)[0], params[0])
        prev = last.get(rowkey)
        wave = 0 if prev is None else prev[0] if prev[1] == sql else prev[0] + 1
        if wave == len(waves):
            waves.append({})
        last[rowkey] = (wave, sql)
        waves[wave].setdefault(sql, []).append(params)
    grouped = [(sql, rows) for wave in waves for sql, rows in wave.items()]
    return runs, grouped


def _baseline(
    site: Path, work: Path, runs: list[tuple[str, list[list[Any]]]], cache_kib: int | None = None
) -> float:
    """The same operations with executemany in one transaction on fresh restored copies.

    With `cache_kib`, each database gets the page cache the runner gives it (else
    SQLite's default), to show how much of the gap that setting alone closes.
    """
    work.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(":memory:", isolation_level=None)
    for db in DBS:
        copy = work / f"{db}.sqlite"
        shutil.copyfile(site / "backups" / f"{db}.sqlite", copy)
        conn.execute(f"ATTACH ? AS db_{db}", (str(copy),))
        conn.execute(f"PRAGMA db_{db}.synchronous=FULL")
        if cache_kib is not None:
            conn.execute(f"PRAGMA db_{db}.cache_size = -{cache_kib}")
    os.sync()
    started = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    for sql, rows in runs:
        conn.executemany(sql, rows)
    conn.execute("COMMIT")
    seconds = time.perf_counter() - started
    conn.close()
    return seconds


# rf_recovery's row for an applied transaction, the times as text made by SQLite
# (what the runner's time_text reproduces in Python)
APPLIED_ROW = (
    "INSERT OR REPLACE INTO {schema}rf_recovery (logging_id, txn, user, program, status, "
    "reason, detail, begin_us, end_us, first_record, end_record, calls, begin_time, end_time) "
    "VALUES ({logging_id:d},?1,?2,?3,'applied',NULL,NULL,?4,?5,?6,?7,?8,"
    "strftime('%Y-%m-%dT%H:%M:%fZ', ?4 / 1e6, 'unixepoch'), "
    "strftime('%Y-%m-%dT%H:%M:%fZ', ?5 / 1e6, 'unixepoch'))"
)


def _strong(site: Path, work: Path, applied: set[int]) -> float:
    """The strong baseline: parse the log set as documented and apply it by hand.

    Timed from the first byte of the log to the commit: every record framed with
    struct and its CRC checked, identities, begins, calls (struct + json.loads of the
    values) and ends decoded; the calls of each transaction the runner applied,
    in commit order, grouped into waves (each row sees its calls in log order,
    calls on different rows share one executemany per statement: fewer groups than
    the runner, which groups per batch); then one transaction over the four
    databases with the runner's pragmas (synchronous=FULL, journal_mode=DELETE,
    its page cache) and temp_store=MEMORY (stronger than the runner, which keeps
    FILE for flat memory) that runs the waves and bulk-inserts the
    applied transactions' rf_recovery rows. SQL text per (database, type,
    descriptor) comes from the runner's statement builder, cached: an expert
    would write the same statements.
    """
    work.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("PRAGMA temp_store=MEMORY")
    for db in DBS:
        copy = work / f"{db}.sqlite"
        shutil.copyfile(site / "backups" / f"{db}.sqlite", copy)
        conn.execute(f"ATTACH ? AS db_{db}", (str(copy),))
        conn.execute(f"PRAGMA db_{db}.journal_mode=DELETE")
        conn.execute(f"PRAGMA db_{db}.synchronous=FULL")
        conn.execute(f"PRAGMA db_{db}.cache_size = -{CACHE_KIB}")
        conn.execute(RECOVERY_DDL.format(schema=f"db_{db}."))
    stmts = StatementCache(conn, [f"db_{db}" for db in DBS])
    os.sync()
    gc.disable()  # it holds every call at once: cyclic collections would only rescan them
    started = time.perf_counter()
    record, crc32, loads = m.RECORD, zlib.crc32, json.loads
    begin_p, call_p, end_p, ident = m.BEGIN_P, m.CALL_P, m.END_P, m.IDENT
    put, delete, begin_t, end_t, ident_t = m.PUT, m.DELETE, m.BEGIN, m.END, m.IDENTITY
    sql_of: dict[tuple[str, int, bytes], str] = {}
    who: dict[int, tuple[str, str]] = {}
    opened: dict[int, tuple[str, int, int, int, list[tuple[int, bytes, bytes]]]] = {}
    waves: list[dict[str, list[Any]]] = [{}]
    last: dict[tuple[str, str, Any], tuple[int, str]] = {}
    rows: dict[str, list[tuple[Any, ...]]] = {db: [] for db in DBS}
    logging_id = 0
    n = 1
    damaged = False
    while not damaged and (path := site / "logs" / f"dblog.{n}.log").exists():
        with path.open("rb") as handle:
            header = m.read_header(handle, path.name)
            logging_id = header.logging_id
            handle.seek(0)
            data = handle.read()
        pos, size = header.size, len(data)
        while pos + m.RECORD_SIZE <= size:
            crc, length, seq, rtype = record.unpack_from(data, pos)
            body, end = pos + m.RECORD_SIZE, pos + m.RECORD_SIZE + length
            if end > size or crc32(data[pos + 4 : end]) != crc:
                damaged = True  # a torn tail: the end of the log, as the runner reads it
                break
            if put <= rtype <= delete:
                txn, dlen = call_p.unpack_from(data, body)
                calls = opened.get(txn)
                if calls is not None:
                    split = body + 6 + dlen
                    calls[4].append((rtype, data[body + 6 : split], data[split:end]))
            elif rtype == begin_t:
                txn, session, moment = begin_p.unpack_from(data, body)
                if txn in applied:
                    name = data[body + begin_p.size : end].decode()
                    opened[txn] = (name, session, moment, seq, [])
            elif rtype == end_t:
                txn, moment = end_p.unpack_from(data, body)
                done = opened.pop(txn, None)
                if done is not None:
                    db, session, began, first, calls = done
                    # one json.loads per transaction: its calls' values as one array
                    values = loads(b"[" + b",".join([c[2] for c in calls]) + b"]")
                    for (rtype_, desc, _raw), params in zip(calls, values, strict=True):
                        sql = sql_of.get((db, rtype_, desc))
                        if sql is None:
                            got = stmts.get(f"db_{db}", rtype_, desc).sql
                            assert got is not None
                            sql = sql_of[(db, rtype_, desc)] = got
                        rowkey = (db, desc[: desc.index(b"(")], params[0])
                        prev = last.get(rowkey)
                        wave = 0 if prev is None else prev[0] if prev[1] == sql else prev[0] + 1
                        if wave == len(waves):
                            waves.append({})
                        last[rowkey] = (wave, sql)
                        group = waves[wave].get(sql)
                        if group is None:
                            group = waves[wave][sql] = []
                        group.append(params)
                    user, program = who.get(session, ("?", "?"))
                    rows[db].append((txn, user, program, began, moment, first, seq, len(calls)))
            elif rtype == ident_t:
                (session,) = ident.unpack_from(data, body)
                person = loads(data[body + ident.size : end])
                who[session] = (person["user"], person["program"])
            pos = end
        n += 1
    parsed = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    for wave in waves:
        for sql, params in wave.items():
            # key order walks each B-tree once; stable, so one row's calls keep their
            # order (integer keys only: other keys may name one row unequal)
            if all(type(p[0]) is int for p in params):
                params.sort(key=itemgetter(0))
            conn.executemany(sql, params)
    calls_done = time.perf_counter()
    for db in DBS:
        conn.executemany(APPLIED_ROW.format(schema=f"db_{db}.", logging_id=logging_id), rows[db])
    rows_done = time.perf_counter()
    conn.execute("COMMIT")
    seconds = time.perf_counter() - started
    gc.enable()
    conn.close()
    print(
        f"  strong baseline: {parsed - started:.2f}s parsing and grouping, "
        f"{seconds - (parsed - started):.2f}s SQL ({sum(len(w) for w in waves)} executemany: "
        f"calls {calls_done - parsed:.2f}s, rf_recovery rows {rows_done - calls_done:.2f}s, "
        f"commit {started + seconds - rows_done:.2f}s)",
        flush=True,
    )
    return seconds


def _same_recovery(a: Path, b: Path) -> bool:
    """The applied transactions' rf_recovery rows, compared by content."""
    ca, cb = sqlite3.connect(a), sqlite3.connect(b)
    try:
        q = "SELECT * FROM rf_recovery WHERE status = 'applied' ORDER BY logging_id, txn"
        return ca.execute(q).fetchall() == cb.execute(q).fetchall()
    finally:
        ca.close()
        cb.close()


def _same_content(a: Path, b: Path) -> bool:
    ca, cb = sqlite3.connect(a), sqlite3.connect(b)
    try:
        for (table,) in cb.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'rf_%'"
        ):
            q = f"SELECT * FROM {table} ORDER BY id"
            if ca.execute(q).fetchall() != cb.execute(q).fetchall():
                return False
        return True
    finally:
        ca.close()
        cb.close()


def build_site(base: Path, transactions: int, label: str, rows: int) -> tuple[Path, float]:
    """Generate in a child process, so this process stays small."""
    site = base / f"site-{label}"
    started = time.perf_counter()
    shape = ("--users", 24, "--files", 8, "--concurrency", 12, "--rows", rows, "--no-expected")
    subprocess.run(
        recover("world", "rollforward", site, "--seed", 5, "--transactions", transactions, *shape),
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return site, time.perf_counter() - started


def run_runner(base: Path, site: Path) -> dict[str, Any]:
    books = base / "books"
    books.mkdir(exist_ok=True)
    prep, rec = books / "prepare.yaml", books / "recover.yaml"
    prep.write_text(PREPARE % {"dbs": json.dumps(DBS)})
    rec.write_text(RECOVER % {"dbs": json.dumps(DBS)})
    _cli(site, prep)
    os.sync()  # both sides start on a quiet disk: no writeback of the freshly built site
    wall, rss = _cli(site, rec)
    return {"wall": wall, "rss_kib": rss, "step": step_seconds(site, "recover")}


def run_baselines(base: Path, site: Path, label: str) -> dict[str, Any]:
    applied, calls = _applied(site)
    runs, grouped = _preparse(site, applied)
    out: dict[str, Any] = {
        "transactions": len(applied),
        "calls": calls,
        "runs": len(runs),
        "groups": len(grouped),
        "same": True,
    }
    for name, plan, cache in (
        ("raw", runs, None),
        ("raw_grouped", grouped, None),
        ("raw_cache", runs, CACHE_KIB),
    ):
        work = base / f"{name}-{label}"
        out[name] = _baseline(site, work, plan, cache)
        out["same"] = out["same"] and all(
            _same_content(site / "databases" / f"{db}.sqlite", work / f"{db}.sqlite") for db in DBS
        )
    work = base / f"strong-{label}"
    out["strong"] = _strong(site, work, applied)
    out["strong_same"] = all(
        _same_content(site / "databases" / f"{db}.sqlite", work / f"{db}.sqlite")
        and _same_recovery(site / "databases" / f"{db}.sqlite", work / f"{db}.sqlite")
        for db in DBS
    )
    scenario = json.loads((site / "scenario.json").read_text())
    out["records"] = scenario["records"]
    out["log_bytes"] = sum(p.stat().st_size for p in (site / "logs").iterdir())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="size multiplier (1.0 = about 1.1 million records)"
    )
    parser.add_argument("--keep", type=Path, default=None, help="keep the sites in this directory")
    args = parser.parse_args(argv)
    big = max(200, int(200_000 * args.scale))
    rows = max(100, int(50_000 * args.scale))
    base = args.keep or Path(tempfile.mkdtemp(prefix="bench-rollforward-"))
    base.mkdir(parents=True, exist_ok=True)
    results = []
    try:
        sizes = (("small", max(50, big // 4)), ("large", big))
        sites = {label: build_site(base, n, label, rows) for label, n in sizes}
        # the runners first, while this process is small: a child's peak RSS counts
        # the parent's pages it was forked with
        runs = {label: run_runner(base, sites[label][0]) for label, _n in sizes}
        for label, _n in sizes:
            results.append(
                {
                    "label": label,
                    "built": sites[label][1],
                    **runs[label],
                    **run_baselines(base, sites[label][0], label),
                }
            )
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    print(
        f"{'size':<6} {'records':>10} {'log MiB':>8} {'txns':>8} {'calls':>9} {'runner s':>9} "
        f"{'(wall)':>7} {'raw s':>7} {'ratio':>6} {'grouped raw s':>14} {'ratio':>6} "
        f"{'raw+cache s':>12} {'ratio':>6} {'rec/s':>9} {'peak RSS':>9}"
    )
    for r in results:
        print(
            f"{r['label']:<6} {r['records']:>10,} {r['log_bytes'] / 2**20:>8.1f} "
            f"{r['transactions']:>8,} {r['calls']:>9,} {r['step']:>9.2f} {r['wall']:>7.2f} "
            f"{r['raw']:>7.2f} {r['step'] / r['raw']:>6.2f} {r['raw_grouped']:>14.2f} "
            f"{r['step'] / r['raw_grouped']:>6.2f} {r['raw_cache']:>12.2f} "
            f"{r['step'] / r['raw_cache']:>6.2f} {r['records'] / r['step']:>9,.0f} "
            f"{r['rss_kib'] / 1024:>7.0f}MB"
        )
    small, large = results
    print(
        f"raw = the applied calls pre-parsed, executemany per run of consecutive same-statement "
        f"calls in commit order ({large['runs']:,} runs); grouped raw = the same calls grouped "
        f"as the runner groups them ({large['groups']:,} executemany); raw+cache = raw with "
        f"the runner's page cache ({CACHE_KIB // 1024} MiB per database)."
    )
    print(
        f"runner/raw (large): {large['step'] / large['raw']:.2f}x, runner/grouped raw: "
        f"{large['step'] / large['raw_grouped']:.2f}x, runner/raw+cache: "
        f"{large['step'] / large['raw_cache']:.2f}x (target <= 1.5x); peak RSS large/small: "
        f"{large['rss_kib'] / small['rss_kib']:.2f} for {large['records'] / small['records']:.1f}x "
        f"the log; same content as the runner: {small['same'] and large['same']}"
    )
    for r in results[1:]:  # the target is at >= 1M records; the small log is detail
        record(
            Target(
                "roll_forward",
                f"recover {r['records']:,} records ({r['label']})",
                r["step"],
                r["strong"],
                1.5,
                r["strong_same"],
            )
        )
    print(
        "runner s = the recover step's own time in the journal (check, replay, reports, "
        "commits); (wall) adds CLI start-up"
    )
    return 0 if small["same"] and large["same"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
