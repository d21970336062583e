"""Benchmark: cases.store and cases.restore at 1k, 4k and 16k files vs a durable copy.

    python bench/bench_case_archive.py [--scale 1.0] [--keep DIR]

Builds a case-archive site (`recover world cases`) with as many unstored
ingest files as asked (7 products, hourly), then times `recover run` of a
cases.store of all of them to the cache and of a cases.restore of that session
into a case directory, each step's own time from the journal.

Why the baseline is strong: it is what an expert writes by hand for the same
work and the same result, in the same run on an identical copy of the site:
one catalog transaction per step with the runner's SQL (the files rows inserted
with one INSERT ... SELECT, the session's rows likewise); each file read once,
its sha256 checked against the catalog (the runner refuses a changed file, so
the baseline must look too), written to a temporary name, fsynced, renamed; the
directories fsynced once each, in one batch before the commit that records the
files -- the least durability that still survives a power cut at any moment,
exactly what pools already does before each checkpoint. No per-file directory
fsync, no journal, no checks, no reports. Both sides' results are compared: every
file under cache/ and restore/ by sha256 (links by target), and the catalog
tables the steps write (files, session_files, cases) by content.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import Target, child_env, measure, record, recover, step_seconds  # noqa: E402

PRODUCTS = ["radar_a", "radar_b", "satellite", "lightning", "sounding", "model_t", "model_w"]
FIRST = "2026-03-09T16:00:00Z"  # the generator's sessions end before this hour
NOW = "2027-12-31T12:00:00+00:00"  # after every ingest file, so all of them match
STAMP = "2027-12-31T12:00:00Z"
SESSION, CASE = "bench session", "Bench case"
PLAYBOOK = f"""version: 1
name: bench-cases
site: {{catalog: catalog.sqlite}}
steps:
  - id: store
    action: cases.store
    args: {{session: {SESSION}, products: {json.dumps(PRODUCTS)}, time_from: "{FIRST}"}}
  - id: restore
    action: cases.restore
    args: {{session: {SESSION}, case: {CASE}}}
"""
LIMIT = 2.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="size multiplier")
    parser.add_argument("--keep", type=Path, help="build the sites here and keep them")
    parser.add_argument("--baseline", metavar="SITE", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.baseline:
        return _baseline(Path(args.baseline))
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-cases-"))
    work.mkdir(parents=True, exist_ok=True)
    ok = True
    try:
        for files in (1_000, 4_000, 16_000):
            ok = _measure(work, max(70, int(files * args.scale))) and ok
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


def _measure(work: Path, files: int) -> bool:
    site, raw = work / f"cases-{files}", work / f"cases-{files}-raw"
    for path in (site, raw):
        shutil.rmtree(path, ignore_errors=True)
    hours = 16 + math.ceil(files / len(PRODUCTS))
    options = ("--products", 7, "--hours", hours, "--tape-window", "00:00-24:00")
    subprocess.run(
        recover("world", "cases", site, *options), check=True, cwd=ROOT, stdout=subprocess.DEVNULL
    )
    with sqlite3.connect(site / "catalog.sqlite") as db:  # room for every file
        db.execute(
            "UPDATE settings SET value = '1000000000000' "
            "WHERE key IN ('cache_capacity', 'restore_capacity')"
        )
    db.close()
    shutil.copytree(site, raw, symlinks=True)
    playbook = work / "cases.yaml"
    playbook.write_text(PLAYBOOK)
    os.sync()
    ran = measure(recover("run", playbook, "--site", site, "--yes"), child_env(RECOVER_NOW=NOW))
    store, restore = step_seconds(site, "store"), step_seconds(site, "restore")
    os.sync()
    measure([sys.executable, str(Path(__file__).resolve()), "--baseline", str(raw)])
    times = json.loads((raw / "baseline.json").read_text())
    same = _same(site, raw)
    n = int(times["files"])
    print(
        f"[{n:,} files] runner store {store:.2f}s restore {restore:.2f}s (process "
        f"{ran.seconds:.2f}s, {ran.rss_mb:.0f} MB); durable copy store {times['store']:.2f}s "
        f"restore {times['restore']:.2f}s; same output: {same}",
        flush=True,
    )
    a = record(Target("case_archive", f"store {n:,} files", store, times["store"], LIMIT, same))
    b = record(
        Target("case_archive", f"restore {n:,} files", restore, times["restore"], LIMIT, same)
    )
    return a.passed and b.passed


# -- the baseline (run in its own process) -------------------------------------------
def _baseline(site: Path) -> int:
    db = sqlite3.connect(site / "catalog.sqlite", isolation_level=None)
    settings = dict(db.execute("SELECT key, value FROM settings"))
    ingest, cache = site / settings["ingest_dir"], site / settings["cache_dir"]
    directory = f"{settings['restore_dir']}/{CASE.replace(' ', '_')}"
    products = json.dumps(PRODUCTS)
    started = time.perf_counter()
    db.execute("BEGIN IMMEDIATE")
    before = db.execute("SELECT coalesce(max(id), 0) FROM files").fetchone()[0]
    db.execute(
        """INSERT INTO files (relpath, product, time, size, digest, location)
           SELECT p.relpath, p.product, p.time, p.size, p.digest, 'cache' FROM products p
           WHERE p.product IN (SELECT value FROM json_each(?1)) AND p.time >= ?2
             AND p.time <= ?3
             AND NOT EXISTS (SELECT 1 FROM files f WHERE f.relpath = p.relpath)
           ORDER BY p.relpath""",
        (products, FIRST, STAMP),
    )
    rows = db.execute(
        "SELECT relpath, digest FROM files WHERE id > ? ORDER BY id", (before,)
    ).fetchall()
    dirs: set[Path] = set()
    for relpath, digest in rows:
        _durable_copy(ingest / relpath, cache / relpath, digest, dirs)
    _sync_dirs(dirs)
    session = db.execute(
        """INSERT INTO store_sessions (name, products, time_from, time_to, mode, created, updated)
           VALUES (?, ?, ?, NULL, 'one_time', ?, ?)""",
        (SESSION, products, FIRST, STAMP, STAMP),
    ).lastrowid
    db.execute(
        "INSERT INTO session_files (session_id, file_id) SELECT ?, id FROM files WHERE id > ?",
        (session, before),
    )
    db.execute("COMMIT")
    stored = time.perf_counter()
    db.execute("BEGIN IMMEDIATE")
    rows = db.execute(
        """SELECT f.relpath, f.size, f.digest FROM session_files sf
           JOIN files f ON f.id = sf.file_id WHERE sf.session_id = ? ORDER BY f.relpath""",
        (session,),
    ).fetchall()
    dirs = set()
    for relpath, _size, digest in rows:
        _durable_copy(cache / relpath, site / directory / relpath, digest, dirs)
    for common in json.loads(settings["common_dirs"]):
        link = site / directory / common.rsplit("/", 1)[-1]
        link.symlink_to(os.path.relpath(site / common, link.parent))
        dirs.add(link.parent)
    _sync_dirs(dirs)
    db.execute(
        """INSERT INTO cases (name, directory, session, files, bytes, in_use, restored)
           VALUES (?, ?, ?, ?, ?, 0, ?)""",
        (CASE, directory, SESSION, len(rows), sum(r[1] for r in rows), STAMP),
    )
    db.execute("COMMIT")
    done = time.perf_counter()
    db.close()
    (site / "baseline.json").write_text(
        json.dumps({"files": len(rows), "store": stored - started, "restore": done - stored})
    )
    return 0


def _durable_copy(src: Path, dst: Path, digest: str, dirs: set[Path]) -> None:
    """Read, check the digest, write a temporary file, fsync it, rename it into place."""
    data = src.read_bytes()
    if hashlib.sha256(data).hexdigest() != digest:
        raise SystemExit(f"{src} does not match the catalog")
    if dst.parent not in dirs:
        dst.parent.mkdir(parents=True, exist_ok=True)
        dirs.add(dst.parent)
    tmp = dst.with_name(f".{dst.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, dst)


def _sync_dirs(dirs: set[Path]) -> None:
    """Each directory written into (and each new one's parent) fsynced once."""
    for directory in sorted(dirs | {d.parent for d in dirs}):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# -- comparing the results -----------------------------------------------------------
def _tree(root: Path) -> dict[str, str]:
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _same(site: Path, raw: Path) -> bool:
    for part in ("cache", "restore"):
        if _tree(site / part) != _tree(raw / part):
            print(f"  {part}/ differs between the runner and the baseline")
            return False
    queries = (
        "SELECT relpath, product, time, size, digest, location FROM files ORDER BY relpath",
        """SELECT s.name, f.relpath FROM session_files sf JOIN store_sessions s
           ON s.id = sf.session_id JOIN files f ON f.id = sf.file_id ORDER BY 1, 2""",
        "SELECT name, directory, session, files, bytes FROM cases ORDER BY name",
    )
    a, b = sqlite3.connect(site / "catalog.sqlite"), sqlite3.connect(raw / "catalog.sqlite")
    try:
        for query in queries:
            if a.execute(query).fetchall() != b.execute(query).fetchall():
                print(f"  the catalogs differ in: {query.split()[1:3]}")
                return False
    finally:
        a.close()
        b.close()
    return True


if __name__ == "__main__":
    raise SystemExit(main())
