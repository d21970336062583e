"""Benchmark: pools.check + pools.fix through the runner against a raw baseline.

    python bench/bench_pool_containers.py [--scale 1.0]

Builds a repository of 100,000 elements (times --scale) with the world
generator, copies it, then times, each in its own process (peak RSS from
wait4's rusage):

- runner check: `recover run` of a pools.check playbook (digests verified);
- runner fix: `recover run` of a pools.fix playbook (force+fix, the scenario's window);
- raw check: os.scandir over the pools, one read per container, struct-parsed
  headers, SHA-256 of every version (as the check does), the same SQL joins
  (missing, unreferenced, orphans) on a temp table;
- raw fix: the same listing and header reads plus the SQL joins finding each
  missing container's alternates, then the same I/O as the fix with the same
  durability, batched as the runner batches it (new container written to a
  temp file, fsync, rename; alternates renamed into lost+found; every 500
  containers each directory renamed into fsynced once, then that batch's
  catalog rows committed). Its choice of source is simplified (identical, else
  superset, else subset, else any copy); the I/O is the same.

Why the baseline is strong: set-based SQL on a temp table, one read per
container, the durability the runner gives and no more (directory fsyncs
batched per checkpoint, not per rename: the old baseline's 22k fsyncs are
`--raw fix-unbatched`), no journal, no reports. Both leave the same result:
every pool file (lost+found included) by sha256 and the containers' paths in
the catalog are compared after the fix.

Then a smaller repository (a tenth) is checked and fixed again to show that
the runner's peak memory does not grow with the repository.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sqlite3
import struct
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import Target, child_env, record, recover  # noqa: E402
from bench.common import measure as measure_child  # noqa: E402
from runner.procedures.pool_containers.actions.fix import BATCH  # noqa: E402
from runner.procedures.pool_containers.world.generator import NOW  # noqa: E402

CHECK_PLAYBOOK = """version: 1
name: bench-pools-check
site: {catalog: catalog.sqlite}
steps:
  - id: check
    action: pools.check
"""
FIX_PLAYBOOK = """version: 1
name: bench-pools-fix
site: {catalog: catalog.sqlite}
safety: {allow_loss: {versions: unlimited}}
steps:
  - id: fix
    action: pools.fix
    args: {force: true, fix: true, allow_missing_data_since: "%s"}
"""


# -- measuring ---------------------------------------------------------------
def child(args: list[str], env: dict[str, str] | None = None) -> tuple[float, int, int, str]:
    """(seconds, peak RSS in KiB, exit code, stderr tail) of one child process."""
    done = measure_child(args, child_env(**(env or {})), check=False)
    return done.seconds, done.rss_kib, done.exit_code, done.stderr


def runner(playbook: Path, site: Path) -> tuple[float, int, int, str]:
    return child(
        recover("run", playbook, "--site", site, "--yes"), {"RECOVER_NOW": NOW.isoformat()}
    )


def raw(kind: str, site: Path, since: str = "") -> tuple[float, int, int, str]:
    return child([sys.executable, str(Path(__file__).resolve()), "--raw", kind, str(site), since])


# -- the raw baseline ----------------------------------------------------------
FIXED = struct.Struct(">8sBBH16sIQ")
ENTRY = struct.Struct(">IQQQ32s")
TMS = ("whole_copy", "delta", "compressed")


def raw_header(blob: bytes) -> tuple[str, str, list[tuple[str, int, int, int, int, bytes]], int]:
    _m, _v, code, _r, oid, count, _dlen = FIXED.unpack_from(blob, 0)
    pos, entries = FIXED.size, []
    for _ in range(count):
        (length,) = struct.unpack_from(">H", blob, pos)
        branch = blob[pos + 2 : pos + 2 + length].decode()
        pos += 2 + length
        entries.append((branch, *ENTRY.unpack_from(blob, pos)))
        pos += ENTRY.size
    (crc,) = struct.unpack_from(">I", blob, pos)
    if zlib.crc32(blob[:pos]) != crc:
        raise ValueError("bad header")
    return oid.hex(), TMS[code - 1], entries, pos + 4


def raw_scan(conn: sqlite3.Connection, site: Path, verify: bool) -> None:
    conn.execute(
        "CREATE TEMP TABLE f (id INTEGER PRIMARY KEY, pool TEXT, kind TEXT, relpath TEXT, "
        "oid TEXT, tm TEXT, keys TEXT, corrupt INTEGER)"
    )
    rows = []
    for pool, path, kind in conn.execute("SELECT name, path, kind FROM pools").fetchall():
        base = site / path
        stack = [""]
        while stack:
            rel = stack.pop()
            with os.scandir(base / rel if rel else base) as entries:
                for entry in entries:
                    name = f"{rel}/{entry.name}" if rel else entry.name
                    if entry.is_dir():
                        if name != "lost+found":
                            stack.append(name)
                        continue
                    with open(entry.path, "rb") as handle:
                        blob = handle.read()
                    oid, tm, versions, start = raw_header(blob)
                    bad = 0
                    if verify:
                        for _b, _n, off, stored, _raw, digest in versions:
                            data = blob[start + off : start + off + stored]
                            if tm == "compressed":
                                try:
                                    data = zlib.decompress(data)
                                except zlib.error:
                                    bad = 1
                                    continue
                            bad |= hashlib.sha256(data).digest() != digest
                    keys = " ".join(f"{b}/{n}" for b, n, *_ in versions)
                    rows.append((pool, kind, name, oid, tm, keys, bad))
                    if len(rows) >= 5000:
                        conn.executemany("INSERT INTO f VALUES (NULL,?,?,?,?,?,?,?)", rows)
                        rows = []
    conn.executemany("INSERT INTO f VALUES (NULL,?,?,?,?,?,?,?)", rows)
    conn.execute("CREATE INDEX temp.f_path ON f(pool, relpath)")
    conn.execute("CREATE INDEX temp.f_oid ON f(oid)")


def raw_check(site: Path, verify: bool = True) -> None:
    conn = sqlite3.connect(site / "catalog.sqlite")
    raw_scan(conn, site, verify=verify)
    counts = conn.execute(
        """SELECT
             (SELECT count(*) FROM containers c WHERE NOT EXISTS
                (SELECT 1 FROM f WHERE f.pool = c.pool AND f.relpath = c.relpath)),
             (SELECT count(*) FROM f WHERE f.kind = 'source' AND NOT EXISTS
                (SELECT 1 FROM containers c WHERE f.pool = c.pool AND f.relpath = c.relpath)),
             (SELECT count(*) FROM f WHERE f.kind = 'source'
                AND NOT EXISTS (SELECT 1 FROM elements e WHERE e.oid = f.oid)),
             (SELECT count(*) FROM f WHERE f.corrupt),
             (SELECT count(*) FROM f JOIN containers c ON f.pool = c.pool AND f.relpath = c.relpath
                JOIN elements e ON e.id = c.element_id WHERE e.oid != f.oid)"""
    ).fetchone()
    print(json.dumps({"missing": counts[0], "unreferenced": counts[1], "corrupt": counts[3]}))


def durable_write(path: Path, data: bytes, held: set[Path] | None) -> None:
    """Temp file, fsync, rename; the directory fsynced now, or once per batch if `held`."""
    tmp = path.with_name(f".{path.name}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    sync_later(path.parent, held)


def sync_later(directory: Path, held: set[Path] | None) -> None:
    if held is None:
        fsync_dir(directory)
    else:
        held.add(directory)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def raw_fix(site: Path, batch: int | None = BATCH) -> None:
    """With `batch`, as the runner makes it durable: every `batch` rebuilt containers,
    fsync each directory renamed into once, then commit their catalog rows. Without,
    a directory fsync after every rename and one commit at the end (the old row)."""
    conn = sqlite3.connect(site / "catalog.sqlite")
    raw_scan(conn, site, verify=False)
    paths = dict(conn.execute("SELECT name, path FROM pools"))
    rows = conn.execute(
        """SELECT c.id, c.pool, c.relpath, c.type_manager, e.oid,
                  (SELECT group_concat(b.name || '/' || v.number, ' ') FROM container_versions cv
                   JOIN versions v ON v.id = cv.version_id JOIN branches b ON b.id = v.branch_id
                   WHERE cv.container_id = c.id),
                  a.pool, a.kind, a.relpath, a.tm, a.keys
           FROM containers c JOIN elements e ON e.id = c.element_id
           JOIN f a ON a.oid = e.oid
             AND (a.kind = 'cleartext' OR NOT EXISTS (SELECT 1 FROM containers r
                  WHERE r.pool = a.pool AND r.relpath = a.relpath))
           WHERE NOT EXISTS (SELECT 1 FROM f WHERE f.pool = c.pool AND f.relpath = c.relpath)
           ORDER BY c.id"""
    ).fetchall()
    by_container: dict[int, list[tuple[object, ...]]] = {}
    for row in rows:
        by_container.setdefault(int(row[0]), []).append(row)  # type: ignore[call-overload]
    updates, moved = [], set()
    held: set[Path] | None = set() if batch else None
    for cid, cands in by_container.items():
        _c, pool, relpath, tm, oid, expected, *_ = cands[0]
        want = set(str(expected or "").split())
        same = [c for c in cands if c[7] == "source" and c[9] == tm]
        pick = (
            [c for c in same if set(str(c[10]).split()) == want]
            or [c for c in same if set(str(c[10]).split()) > want]
            or [c for c in same if set(str(c[10]).split()) < want]
        )
        sources = pick[:1] or cands
        data = b"".join((site / paths[c[6]] / str(c[8])).read_bytes() for c in sources)
        target = f"{str(relpath).rpartition('/')[0]}/{oid}.c{cid}.raw"
        durable_write(site / paths[pool] / target, data, held)
        updates.append((target, cid))
        for c in cands:
            if c[7] == "source" and (c[6], c[8]) not in moved:
                moved.add((c[6], c[8]))
                src = site / paths[c[6]] / str(c[8])
                dst = site / paths[c[6]] / "lost+found" / str(c[8])
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dst)
                sync_later(dst.parent, held)
        if held is not None and batch and len(updates) % batch == 0:
            commit_batch(conn, held, updates[-batch:])
    if held is not None and batch:
        commit_batch(conn, held, updates[len(updates) - len(updates) % batch :])
    else:
        with conn:
            conn.executemany("UPDATE containers SET relpath = ? WHERE id = ?", updates)
    print(json.dumps({"rebuilt": len(updates), "moved": len(moved)}))


def commit_batch(conn: sqlite3.Connection, held: set[Path], updates: list[Any]) -> None:
    """A batch made durable: its directories fsynced once each, then its rows committed."""
    for directory in sorted(held):
        fsync_dir(directory)
    held.clear()
    with conn:
        conn.executemany("UPDATE containers SET relpath = ? WHERE id = ?", updates)


# -- the benchmark ---------------------------------------------------------------
def measure(base: Path, elements: int, label: str) -> dict[str, tuple[float, int, int, str]]:
    site, copy = base / f"site-{label}", base / f"raw-{label}"
    started = time.perf_counter()
    # Built in a child too: the parent stays small, so that the children's peak RSS
    # (which includes what a child inherits before exec) is their own.
    built = child(
        [
            sys.executable,
            "-m",
            "runner",
            "world",
            "pools",
            str(site),
            "--seed",
            "7",
            "--elements",
            str(elements),
            "--now",
            NOW.isoformat(),
        ]
    )
    if built[2] != 0:
        raise SystemExit(f"world generation failed:\n{built[3]}")
    scenario = json.loads((site / "scenario.json").read_text())
    print(
        f"[{label}] world: {elements:,} elements, {scenario['pool_files']:,} pool files, "
        f"{scenario['expected']['fix']['missing']:,} missing containers, "
        f"built in {time.perf_counter() - started:.1f}s",
        flush=True,
    )
    shutil.copytree(site, copy)
    check_pb, fix_pb = base / "check.yaml", base / "fix.yaml"
    check_pb.write_text(CHECK_PLAYBOOK)
    fix_pb.write_text(FIX_PLAYBOOK % scenario["window"])
    out = {
        "runner check": runner(check_pb, site),
        "raw check": raw("check", copy),
        "raw scan": raw("scan", copy),
        "runner fix": runner(fix_pb, site),
        "raw fix": raw("fix", copy),
    }
    out["elements"] = (float(elements), 0, 0, "")
    for name, (_s, _rss, code, err) in out.items():
        if code != 0:
            print(f"[{label}] {name} failed with exit {code}:\n{err}")
    journal = sqlite3.connect(site / ".recover" / "journal.sqlite")
    fix = json.loads(
        journal.execute("SELECT outputs_json FROM recover_steps WHERE step_id='fix'").fetchone()[0]
    )
    journal.close()
    want = scenario["expected"]["fix"]
    wrong = {k: (fix.get(k), v) for k, v in want.items() if fix.get(k) != v}
    print(f"[{label}] runner fix matches scenario.json: {wrong or 'yes'}")
    same = same_result(site, copy)
    print(f"[{label}] runner and raw fix leave the same pools and catalog: {same}")
    out["same"] = (0.0, 0, 0 if same else 1, "")
    return out


def same_result(site: Path, copy: Path) -> bool:
    """Every pool file (lost+found included) by sha256 and the containers' paths."""
    conn = sqlite3.connect(site / "catalog.sqlite")
    pools = [p for (p,) in conn.execute("SELECT path FROM pools ORDER BY name")]
    query = "SELECT id, pool, relpath FROM containers ORDER BY id"
    mine = conn.execute(query).fetchall()
    conn.close()
    other = sqlite3.connect(copy / "catalog.sqlite")
    theirs = other.execute(query).fetchall()
    other.close()
    if mine != theirs:
        return False
    for pool in pools:
        trees = []
        for root in (site / pool, copy / pool):
            trees.append(
                {
                    str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
                    for p in root.rglob("*")
                    if p.is_file() and not p.name.startswith(".")
                }
            )
        if trees[0] != trees[1]:
            return False
    return True


def report(out: dict[str, tuple[float, int, int, str]]) -> float:
    print(f"{'':14}{'runner':>10}{'raw':>10}{'ratio':>8}{'runner RSS':>14}{'raw RSS':>11}")
    total_r = total_b = 0.0
    for what in ("check", "fix"):
        r, b = out[f"runner {what}"], out[f"raw {what}"]
        total_r += r[0]
        total_b += b[0]
        print(
            f"{what:14}{r[0]:>9.2f}s{b[0]:>9.2f}s{r[0] / b[0]:>7.2f}x"
            f"{r[1] / 1024:>11.1f} MiB{b[1] / 1024:>7.1f} MiB"
        )
    ratio = total_r / total_b
    print(f"{'check + fix':14}{total_r:>9.2f}s{total_b:>9.2f}s{ratio:>7.2f}x")
    elements = f"{out['elements'][0]:,.0f}"
    same = out["same"][2] == 0
    record(Target("pool_containers", f"check + fix {elements} elements", total_r, total_b, 2, same))
    print(
        f"(listing + header reads + SQL joins alone, no digests: {out['raw scan'][0]:.2f}s; "
        "the raw check adds the digests, the raw fix the durable writes and moves)"
    )
    return ratio


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="size multiplier (1 = 100,000)")
    parser.add_argument("--keep", type=Path, help="build the sites here and keep them")
    parser.add_argument("--raw", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.raw:
        kind, site = args.raw[0], Path(args.raw[1])
        if kind == "fix":
            raw_fix(site)
        elif kind == "fix-unbatched":
            raw_fix(site, batch=None)
        else:
            raw_check(site, verify=kind == "check")
        return 0
    elements = max(400, int(100_000 * args.scale))
    base = args.keep or Path(tempfile.mkdtemp(prefix="bench-pools-"))
    base.mkdir(parents=True, exist_ok=True)
    try:
        big = measure(base, elements, "full")
        print(f"\npools check + fix, {elements:,} elements")
        ratio = report(big)
        small_n = max(400, elements // 10)
        small = measure(base, small_n, "tenth")
        print(
            f"\nmemory: runner peak RSS {small['runner fix'][1] / 1024:.1f} MiB at {small_n:,} "
            f"elements, {big['runner fix'][1] / 1024:.1f} MiB at {elements:,} "
            f"(check: {small['runner check'][1] / 1024:.1f} / {big['runner check'][1] / 1024:.1f})"
        )
        print(f"target: within 2x of the raw baseline: {'met' if ratio <= 2 else 'NOT met'}")
        failed = any(v[2] != 0 for v in (*big.values(), *small.values()))
        return 1 if failed else 0
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
