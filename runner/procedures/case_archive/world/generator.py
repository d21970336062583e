"""A deterministic case-archive site: ingest data, sessions on an old and on the
current tape, some in the cache, overlapping sessions, a corrupt tape record,
a case in use. scenario.json states what the shipped playbook and the rules
must find, computed from the construction."""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from runner.procedures.case_archive import catalog, tape

NOW = datetime(2026, 3, 10, 20, 0, 0, tzinfo=UTC)  # inside the default tape window
DAY = datetime(2026, 3, 9, 0, 0, 0, tzinfo=UTC)
PRODUCTS = ("radar_a", "radar_b", "satellite", "lightning", "sounding", "model_t", "model_w")
POOL = "Archive_pool"
COMMON = ("common/maps", "common/colormaps")


@dataclass(frozen=True)
class Options:
    seed: int = 7
    products: int = 4
    hours: int = 24
    min_size: int = 300
    max_size: int = 900
    tape_window: str = "18:00-06:00"  # UTC; NOW is inside it


@dataclass
class _File:
    product: str
    hour: int
    relpath: str
    data: bytes

    @property
    def time(self) -> str:
        return catalog.stamp(DAY + timedelta(hours=self.hour))

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class _Session:
    name: str
    products: tuple[str, ...]
    first: int
    last: int
    files: list[_File] = field(default_factory=list)


def _hour(h: int) -> str:
    return catalog.stamp(DAY + timedelta(hours=h))


def build(root: Path, opts: Options) -> dict[str, Any]:
    if opts.products < 4 or opts.products > len(PRODUCTS):
        raise ValueError(f"--products must be between 4 and {len(PRODUCTS)}")
    if opts.hours < 16:
        raise ValueError("--hours must be at least 16")
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root} exists and is not empty")
    rng = random.Random(opts.seed)
    names = PRODUCTS[: opts.products]
    files = {
        (p, h): _File(
            p,
            h,
            f"{p}/{(DAY + timedelta(hours=h)):%Y%m%d}/{p}_{(DAY + timedelta(hours=h)):%H%M}.dat",
            rng.randbytes(rng.randint(opts.min_size, opts.max_size)),
        )
        for p in names
        for h in range(opts.hours)
    }
    root.mkdir(parents=True, exist_ok=True)
    for f in files.values():
        path = root / "ingest" / f.relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f.data)

    def session(name: str, products: tuple[str, ...], first: int, last: int) -> _Session:
        s = _Session(name, products, first, last)
        s.files = [files[(p, h)] for p in products for h in range(first, last + 1)]
        return s

    old = session("storm 0309", ("radar_a", "radar_b"), 0, 5)
    hail = session("hail case", ("radar_a", "satellite"), 6, 11)
    front = session("front passage", ("radar_b", "satellite"), 9, 13)
    corrupt = files[("satellite", 8)]

    conn = sqlite3.connect(root / "catalog.sqlite")
    catalog.create(conn)
    conn.executemany(
        "INSERT INTO products (product, time, relpath, size, digest) VALUES (?, ?, ?, ?, ?)",
        [(f.product, f.time, f.relpath, len(f.data), f.digest) for f in files.values()],
    )
    ids: dict[str, int] = {}

    def add_session(s: _Session, created: datetime) -> int:
        cur = conn.execute(
            """INSERT INTO store_sessions (name, products, time_from, time_to, mode, created,
               updated) VALUES (?, ?, ?, ?, 'one_time', ?, ?)""",
            (
                s.name,
                json.dumps(sorted(s.products)),
                _hour(s.first),
                _hour(s.last),
                catalog.stamp(created),
                catalog.stamp(created),
            ),
        )
        assert cur.lastrowid is not None
        for f in s.files:
            if f.relpath not in ids:
                ids[f.relpath] = int(
                    conn.execute(
                        """INSERT INTO files (relpath, product, time, size, digest, location)
                           VALUES (?, ?, ?, ?, ?, 'cache')""",
                        (f.relpath, f.product, f.time, len(f.data), f.digest),
                    ).lastrowid
                    or 0
                )
            conn.execute("INSERT INTO session_files VALUES (?, ?)", (cur.lastrowid, ids[f.relpath]))
        return int(cur.lastrowid)

    tape_dir = root / "tapes"
    tape_dir.mkdir()

    def write_tape(label: str, capacity: int, backups: list[tuple[int, list[_File]]]) -> int:
        path = tape_dir / f"{label}.tape"
        with open(path, "wb") as out:
            header = tape.header_bytes(label, capacity)
            out.write(header)
            position = len(header)
            for backup, chosen in backups:
                writer = tape.SessionWriter(out, position, backup, len(chosen))
                for f in sorted(chosen, key=lambda x: x.relpath):
                    import io

                    offset = writer.add(f.relpath, len(f.data), f.digest, io.BytesIO(f.data), "")
                    conn.execute(
                        "UPDATE files SET location = 'tape', backup_id = ?, tape_offset = ? "
                        "WHERE relpath = ?",
                        (backup, offset, f.relpath),
                    )
                writer.finish()
                conn.execute(
                    "INSERT INTO backups VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        backup,
                        label,
                        catalog.stamp(NOW - timedelta(hours=30 - 10 * backup)),
                        position,
                        len(chosen),
                        sum(len(f.data) for f in chosen),
                    ),
                )
                position = writer.position
        return position

    add_session(old, NOW - timedelta(hours=30))
    old_used = write_tape(f"{POOL}_1_2", 0, [(1, old.files)])
    add_session(hail, NOW - timedelta(hours=20))
    # the default playbook: squall line, radar_a + lightning 10:00-15:00 (radar_a 10, 11
    # already on the current tape through the hail case)
    squall = session("squall line", ("radar_a", "lightning"), 10, 15)
    add_session(front, NOW - timedelta(hours=5))
    in_cache = [f for f in front.files if f not in hail.files]
    squall_new = [f for f in squall.files if f not in hail.files]
    written = in_cache + squall_new
    data = sum(len(f.data) for f in written)
    size_after = (
        tape.session_size(iter([(f.relpath, len(f.data)) for f in hail.files]))
        + tape.session_size(iter([(f.relpath, len(f.data)) for f in written]))
        + len(tape.header_bytes(f"{POOL}_2_2", 0))
    )
    capacity = size_after * 10 // 6  # the default playbook leaves the tape 60% full
    current_used = write_tape(f"{POOL}_2_2", capacity, [(2, hail.files)])
    # fix the capacity in tape 1's header after the fact: same size as tape 2
    old_capacity = capacity
    with open(tape_dir / f"{POOL}_1_2.tape", "r+b") as fix:
        fix.write(tape.header_bytes(f"{POOL}_1_2", old_capacity))
    # a damaged record on the current tape: one data byte flipped
    offset = conn.execute(
        "SELECT tape_offset FROM files WHERE relpath = ?", (corrupt.relpath,)
    ).fetchone()[0]
    with open(tape_dir / f"{POOL}_2_2.tape", "r+b") as damage:
        damage.seek(offset + tape.RECORD_OVERHEAD - 4 + len(corrupt.relpath.encode()) + 5)
        byte = damage.read(1)
        damage.seek(-1, 1)
        damage.write(bytes([byte[0] ^ 0xFF]))
    conn.executemany(
        "INSERT INTO tapes VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (f"{POOL}_1_2", POOL, 1, old_capacity, old_used, "old", 1),
            (f"{POOL}_2_2", POOL, 2, capacity, current_used, "current", 0),
        ],
    )
    for f in in_cache:
        path = root / "cache" / f.relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f.data)
    for rel in COMMON:
        (root / rel).mkdir(parents=True)
        (root / rel / "README").write_text(f"common display data: {rel}\n")
    cache_used = sum(len(f.data) for f in in_cache)
    squall_bytes = sum(len(f.data) for f in squall.files)
    # a case being displayed: restored earlier from the hail case (two files)
    shown = [files[("radar_a", 6)], files[("radar_a", 7)]]
    case_dir = root / "restore" / "review_0309"
    for f in shown:
        (case_dir / f.relpath).parent.mkdir(parents=True, exist_ok=True)
        (case_dir / f.relpath).write_bytes(f.data)
    (case_dir / "LINKS").write_text(
        "".join(f"{c.rsplit('/', 1)[-1]} -> ../../{c}\n" for c in COMMON)
    )
    shown_bytes = sum(len(f.data) for f in shown)
    conn.execute(
        "INSERT INTO cases VALUES ('review 0309', 'restore/review_0309', 'hail case', ?, ?, 1, ?)",
        (len(shown), shown_bytes, catalog.stamp(NOW - timedelta(hours=2))),
    )
    settings = {
        **catalog.DEFAULTS,
        "cache_capacity": str(max(4000, (cache_used + squall_bytes) * 2)),
        "restore_capacity": str(max(6000, shown_bytes + squall_bytes * 3)),
        "common_dirs": json.dumps(list(COMMON)),
        "loaded_tape": f"{POOL}_2_2",
        "tape_window": opts.tape_window,
    }
    conn.executemany("INSERT INTO settings VALUES (?, ?)", sorted(settings.items()))
    conn.commit()
    conn.close()
    (root / "reports").mkdir()

    squall_shared = [f for f in squall.files if f in hail.files]
    scenario: dict[str, Any] = {
        "now": NOW.isoformat(),
        "seed": opts.seed,
        "products": list(names),
        "tapes": {
            "old": f"{POOL}_1_2",
            "current": f"{POOL}_2_2",
            "current_capacity": capacity,
        },
        "sessions": {
            "storm 0309": {"tape": f"{POOL}_1_2", "files": len(old.files)},
            "hail case": {"tape": f"{POOL}_2_2", "files": len(hail.files)},
            "front passage": {
                "files": len(front.files),
                "in_cache": len(in_cache),
                "shared_with": "hail case",
            },
        },
        "corrupt": {"session": "hail case", "file": corrupt.relpath, "tape": f"{POOL}_2_2"},
        "case_in_use": "review 0309",
        "cache_files": len(in_cache),
        "playbook": {
            "session": squall.name,
            "products": list(squall.products),
            "time_from": _hour(squall.first),
            "time_to": _hour(squall.last),
            "case": "Squall line review",
            "directory": "restore/Squall_line_review",
            "store": {
                "files_copied": len(squall_new),
                "files_shared": len(squall_shared),
                "session_files": len(squall.files),
            },
            "write": {
                "files": len(written),
                "bytes": data,
                "tape_used": size_after,
                "tape_percent": round(100 * size_after / capacity, 1),
            },
            "restore": {
                "files": len(squall.files),
                "bytes": squall_bytes,
                "from_tape": len(squall.files),
                "from_cache": 0,
            },
        },
    }
    (root / "scenario.json").write_text(json.dumps(scenario, indent=2) + "\n")
    return scenario
