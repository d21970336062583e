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
- raw fix: force+fix under the scenario's window, written by hand: one
  scandir walk and one read per pool file (digests checked for the unreferenced
  files and cleartext copies, the possible sources, as the fix does), a dict of
  candidates per oid, three set-based queries for the missing containers, their
  elements' versions and expected versions, then per element the documented
  rules (docs/pool_containers.md: identical, else superset with fewest extra,
  else subset with most, ties by (pool, path); else version by version from
  the other alternates then cleartext; the window and last-versions guards),
  the same names (`<oid>.c<id>.<clock>.<wc|dlt|cmp>`, lost+found collisions
  suffixed) and the same durable I/O (temp file, fsync, rename; alternates
  renamed into lost+found; every 500 fixed elements each directory renamed
  into fsynced once, then that batch's catalog rows committed). It reuses the
  procedure's container-format module (runner/procedures/pool_containers/
  media.py: parse, verify, encode), as an expert reuses a format library, and
  none of the runner's action code.

Why the baseline is strong: one read per container, a plain dict instead of
temp tables for the candidates, set-based SQL for the catalog side, the
durability the runner gives and no more (directory fsyncs batched per
checkpoint, not per rename: the old baseline's per-rename fsyncs are
`--raw fix-unbatched`), no journal, no work file, no checks, no reports. And
it does the same work: after both fixes every catalog table is compared by
content and every pool file (lost+found included) by sha256; the Target row's
`same` is that comparison.

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
from datetime import UTC, datetime
from itertools import groupby
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import Target, child_env, record, recover  # noqa: E402
from bench.common import measure as measure_child  # noqa: E402
from runner.procedures.pool_containers import media  # noqa: E402
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


Candidate = tuple[str, str, str, frozenset[tuple[str, int]], frozenset[tuple[str, int]]]
# (pool, relpath, type manager, versions held, corrupt versions), sorted by (pool, relpath)


def fix_scan(
    site: Path, pools: list[tuple[str, str, str]], referenced: set[tuple[str, str]]
) -> tuple[set[tuple[str, str]], dict[str, tuple[list[Candidate], list[Candidate]]]]:
    """One read per pool file, parsed by the format library; digests checked for the
    unreferenced files and cleartext copies (the possible sources), as the fix does.
    Returns the referenced paths found and, per oid, (alternates, cleartext copies)."""
    found: set[tuple[str, str]] = set()
    by_oid: dict[str, tuple[list[Candidate], list[Candidate]]] = {}
    for pool, path, kind in pools:
        stack = [("", str(site / path))]
        while stack:
            rel, real = stack.pop()
            with os.scandir(real) as entries:
                for entry in entries:
                    if entry.name.startswith(".") or (not rel and entry.name == "lost+found"):
                        continue
                    name = f"{rel}/{entry.name}" if rel else entry.name
                    if entry.is_dir(follow_symlinks=False):
                        stack.append((name, entry.path))
                        continue
                    key = (pool, name)
                    is_ref = kind == "source" and key in referenced
                    oid, tm, rows, bad = media.inspect(read_all(entry.path), name, not is_ref)
                    if is_ref:
                        found.add(key)
                        continue
                    held = frozenset((r[0], r[1]) for r in rows)
                    lists = by_oid.setdefault(oid, ([], []))
                    lists[kind == "cleartext"].append((pool, name, tm, held, frozenset(bad or ())))
    for alternates, cleartext in by_oid.values():
        alternates.sort(key=lambda c: (c[0], c[1]))
        cleartext.sort(key=lambda c: (c[0], c[1]))
    return found, by_oid


def read_all(path: str) -> bytes:
    """A whole file: one read for the common few-KiB container."""
    fd = os.open(path, os.O_RDONLY)
    try:
        blob = os.read(fd, 1 << 16)
        if len(blob) < 1 << 16:  # a regular file reads short only at its end
            return blob
        chunks = [blob]
        while more := os.read(fd, 1 << 20):
            chunks.append(more)
        return b"".join(chunks)
    finally:
        os.close(fd)


def choose(
    tm: str,
    expected: list[tuple[int, str, int, str]],
    alternates: list[Candidate],
    cleartext: list[Candidate],
) -> dict[tuple[str, int], Candidate]:
    """Where each expected version comes from (docs/pool_containers.md, the algorithm):
    the best same-type-manager intact alternate (identical, superset with fewest
    extra, subset with most; first by (pool, path)), else version by version from
    the other alternates (other type managers first), then the cleartext copies."""
    want = frozenset((b, n) for _vid, b, n, _at in expected)
    usable = [a for a in alternates if a[2] == tm and not a[4]]
    best = next((a for a in usable if a[3] == want), None)
    if best is None:
        supersets = [a for a in usable if a[3] > want]
        subsets = [a for a in usable if a[3] and a[3] < want]
        if supersets:
            best = min(supersets, key=lambda a: len(a[3]))
        elif subsets:
            best = max(subsets, key=lambda a: len(a[3]))
    if best is not None:
        return {k: best for k in want & best[3]}
    ordered = sorted(alternates, key=lambda a: a[2] == tm) + cleartext  # stable: (pool, path)
    sources: dict[tuple[str, int], Candidate] = {}
    for key in want:
        for cand in ordered:
            if key in cand[3] and key not in cand[4]:
                sources[key] = cand
                break
    return sources


def rebuilt_parts(
    site: Path, paths: dict[str, str], tm: str, picks: list[tuple[str, int, Candidate]]
) -> list[media.Part]:
    """The new container's versions: stored bytes copied as they are when the stored
    form is the same, else inflated or deflated (zlib level 6) on the way."""
    blobs: dict[tuple[str, str], tuple[bytes, media.Header]] = {}
    parts = []
    for branch, number, cand in picks:
        where = (cand[0], cand[1])
        if where not in blobs:
            blob = read_all(str(site / paths[cand[0]] / cand[1]))
            blobs[where] = (blob, media.parse(blob, cand[1]))
        blob, header = blobs[where]
        entry = header.entry((branch, number))
        assert entry is not None
        start = header.data_start + entry.offset
        stored = blob[start : start + entry.stored]
        if header.type_manager == tm or "compressed" not in (header.type_manager, tm):
            data = stored
        elif tm != "compressed":
            data = zlib.decompress(stored)
        else:
            data = media.store(tm, stored)
        parts.append(
            media.Part(branch, number, len(data), entry.raw, entry.digest, lambda d=data: d)
        )
    return parts


def raw_fix(site: Path, since: str, batch: int | None = BATCH) -> None:
    """Force+fix under the window `since`, written by hand: the same decisions, names
    and bytes as the runner's fix. With `batch`, as the runner makes it durable: every
    `batch` fixed elements, fsync each directory renamed into once, then commit their
    catalog rows. Without, a directory fsync after every rename and one commit at the
    end (the old row)."""
    window = datetime.fromisoformat(since)
    stamp, gone_at = NOW.strftime("%Y%m%dT%H%M%SZ"), NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    conn = sqlite3.connect(site / "catalog.sqlite", isolation_level=None)
    conn.execute("PRAGMA temp_store=MEMORY")
    pools = conn.execute("SELECT name, path, kind FROM pools ORDER BY name").fetchall()
    paths = {name: path.rstrip("/") for name, path, _kind in pools}
    sources = {name for name, _p, kind in pools if kind == "source"}
    ids = {(p, r): i for i, p, r in conn.execute("SELECT id, pool, relpath FROM containers")}
    found, by_oid = fix_scan(site, pools, set(ids))
    conn.execute("CREATE TEMP TABLE m (id INTEGER PRIMARY KEY)")
    conn.executemany(
        "INSERT INTO m VALUES (?)",
        ((i,) for key, i in ids.items() if key[0] in sources and key not in found),
    )
    missing = conn.execute(
        """SELECT c.element_id, c.id, c.pool, c.relpath, e.oid, e.type_manager
           FROM containers c JOIN elements e ON e.id = c.element_id
           WHERE c.id IN (SELECT id FROM temp.m) ORDER BY c.element_id, c.id"""
    ).fetchall()
    versions: dict[int, list[tuple[int, str, int, str, str]]] = {}
    for eid, *version in conn.execute(
        """SELECT b.element_id, v.id, b.name, v.number, v.created_at, v.data
           FROM branches b JOIN versions v ON v.branch_id = b.id
           WHERE b.element_id IN (SELECT c.element_id FROM containers c
                                  WHERE c.id IN (SELECT id FROM temp.m))
           ORDER BY b.element_id, b.name, v.number"""
    ):
        versions.setdefault(eid, []).append(tuple(version))  # type: ignore[arg-type]
    in_container: dict[int, list[int]] = {}
    for cid, vid in conn.execute(
        "SELECT container_id, version_id FROM container_versions "
        "WHERE container_id IN (SELECT id FROM temp.m)"
    ):
        in_container.setdefault(cid, []).append(vid)
    held: set[Path] | None = set() if batch else None
    taken: dict[Path, set[str]] = {}
    rebinds: list[tuple[str, int]] = []
    removed: list[tuple[int]] = []
    lost_ids: list[tuple[int]] = []
    fixed = pending = 0
    for eid, group in groupby(missing, key=lambda r: r[0]):
        rows = list(group)
        oid, tm = rows[0][4], rows[0][5]
        alternates, cleartext = by_oid.get(oid, ([], []))
        present = {v[0]: v for v in versions[eid] if v[4] == "present"}
        plans, lost = [], []
        for _e, cid, pool, relpath, _o, _t in rows:
            expected = sorted(
                (present[v][:4] for v in in_container.get(cid, []) if v in present),
                key=lambda v: (v[1], v[2]),
            )
            picked = choose(tm, expected, alternates, cleartext)
            plans.append(
                (
                    cid,
                    pool,
                    relpath,
                    [(b, n, picked[b, n]) for _i, b, n, _a in expected if (b, n) in picked],
                )
            )
            lost += [v for v in expected if (v[1], v[2]) not in picked]
        if any(
            datetime.strptime(at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) < window
            for *_v, at in lost
        ):
            continue  # refused by the window: left as is
        gone = {v[0] for v in lost}
        above: dict[str, list[int]] = {}
        for vid, branch, number, _at, _data in present.values():
            if number > 0:
                above.setdefault(branch, []).append(vid)
        if any(all(v in gone for v in vids) for vids in above.values()):
            continue  # a branch would lose every version above 0: left for interactive handling
        occupied = {(a[0], a[1]) for a in alternates}
        for cid, pool, relpath, picks in plans:
            if not picks:
                removed.append((cid,))
                continue
            parent = relpath.rpartition("/")[0]
            n, target = 1, ""
            while not target or (pool, target) in occupied:
                name = f"{oid}.c{cid}.{stamp}{f'.{n}' if n > 1 else ''}.{media.TM_EXTENSIONS[tm]}"
                target, n = (f"{parent}/{name}" if parent else name), n + 1
            occupied.add((pool, target))
            out = site / paths[pool] / target
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_name(f".{out.name}.tmp")
            with open(tmp, "wb") as handle:
                media.write(handle, oid, tm, rebuilt_parts(site, paths, tm, picks))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, out)
            sync_later(out.parent, held)
            rebinds.append((target, cid))
        for pool, relpath, *_ in alternates:
            folder = site / paths[pool] / "lost+found" / relpath.rpartition("/")[0]
            names = taken.get(folder)
            if names is None:
                names = taken[folder] = set(os.listdir(folder)) if folder.is_dir() else set()
            name = relpath.rpartition("/")[2]
            if name in names:
                base, k = f"{name}.{stamp}", 1
                name = base
                while name in names:
                    k += 1
                    name = f"{base}.{k}"
            names.add(name)
            folder.mkdir(parents=True, exist_ok=True)
            os.replace(site / paths[pool] / relpath, folder / name)
            sync_later(folder, held)
        lost_ids += [(v[0],) for v in lost]
        fixed += 1
        pending += 1
        if held is not None and batch and pending >= batch:
            commit_batch(conn, held, rebinds, removed, lost_ids, gone_at)
            pending = 0
    if held is not None:
        for directory in sorted(held):
            fsync_dir(directory)
        held.clear()
    commit_batch(conn, set(), rebinds, removed, lost_ids, gone_at)
    print(json.dumps({"fixed": fixed}))


def commit_batch(
    conn: sqlite3.Connection,
    held: set[Path],
    rebinds: list[tuple[str, int]],
    removed: list[tuple[int]],
    lost: list[tuple[int]],
    gone_at: str,
) -> None:
    """A batch made durable: its directories fsynced once each, then its rows
    committed in one transaction (the lists are emptied)."""
    for directory in sorted(held):
        fsync_dir(directory)
    held.clear()
    conn.execute("BEGIN")
    conn.executemany("UPDATE containers SET relpath = ? WHERE id = ?", rebinds)
    conn.executemany("DELETE FROM container_versions WHERE version_id = ?", lost)
    conn.executemany(
        "UPDATE versions SET data = 'gone', data_gone_at = ? WHERE id = ? AND data = 'present'",
        [(gone_at, v) for (v,) in lost],
    )
    conn.executemany("DELETE FROM containers WHERE id = ?", removed)
    conn.execute("COMMIT")
    for done in (rebinds, removed, lost):
        done.clear()


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
        "raw fix": raw("fix", copy, scenario["window"]),
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
    """Every catalog table by content (all rows, all columns) and every pool file
    (lost+found included) by sha256."""
    tables = []
    for root in (site, copy):
        conn = sqlite3.connect(root / "catalog.sqlite")
        names = [
            n
            for (n,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        content = {}
        for name in names:
            cur = conn.execute(f'SELECT * FROM "{name}"')
            columns = ", ".join(str(i + 1) for i in range(len(cur.description)))
            content[name] = conn.execute(f'SELECT * FROM "{name}" ORDER BY {columns}').fetchall()
        tables.append(content)
        pools = [p for (p,) in conn.execute("SELECT path FROM pools ORDER BY name")]
        conn.close()
    if tables[0] != tables[1]:
        print(f"catalogs differ in: {[t for t in tables[0] if tables[0][t] != tables[1].get(t)]}")
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
            differ = sorted(set(trees[0].items()) ^ set(trees[1].items()))
            print(f"pool {pool} differs: {len(differ)} entries, e.g. {differ[:4]}")
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
            raw_fix(site, args.raw[2])
        elif kind == "fix-unbatched":
            raw_fix(site, args.raw[2], batch=None)
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
