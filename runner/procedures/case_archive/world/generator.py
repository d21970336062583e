"""A deterministic case-archive site: ingest data, sessions on an old and on the
current tape, some in the cache, overlapping sessions, a corrupt tape record,
a case in use. scenario.json (world/scenario.py) states what the shipped
playbook and the rules must find, computed from the construction."""

from __future__ import annotations

import hashlib
import io
import json
import random
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from runner.procedures.case_archive import catalog, media
from runner.procedures.case_archive.tape_window import parse_window
from runner.procedures.case_archive.world import scenario
from runner.worlds import option

NOW = datetime(2026, 3, 10, 20, 0, 0, tzinfo=UTC)  # inside the default tape window
DAY = datetime(2026, 3, 9, 0, 0, 0, tzinfo=UTC)
PRODUCTS = ("radar_a", "radar_b", "satellite", "lightning", "sounding", "model_t", "model_w")
POOL = "Archive_pool"
COMMON = ("common/maps", "common/colormaps")
CASE_IN_USE = "review 0309"
BATCH = 1000  # rows per insert_all batch


def _window(text: str) -> str:
    parse_window(text)  # a UsageError naming the problem
    return text


@dataclass(frozen=True)
class Options:
    seed: int = option(7, "Random seed (same seed, same site).")
    products: int = option(4, "Number of products (4-7).")
    hours: int = option(24, "Hours of ingest data (hourly).")
    min_size: int = 300
    max_size: int = 900
    tape_window: str = option(
        "18:00-06:00",  # UTC; NOW is inside it
        "Daily tape access window, HH:MM-HH:MM in UTC (00:00-24:00: always).",
        parse=_window,
    )


@dataclass
class File:
    product: str
    hour: int
    relpath: str
    data: bytes

    @property
    def time(self) -> str:
        return _hour(self.hour)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class Session:
    name: str
    products: tuple[str, ...]
    first: int
    last: int
    files: list[File] = field(default_factory=list)

    @property
    def time_from(self) -> str:
        return _hour(self.first)

    @property
    def time_to(self) -> str:
        return _hour(self.last)


def _hour(h: int) -> str:
    return catalog.stamp(DAY + timedelta(hours=h))


def generate(directory: Path, options: Options) -> dict[str, Any]:
    """Build the site in `directory` (new or empty); returns the scenario."""
    if options.products < 4 or options.products > len(PRODUCTS):
        raise ValueError(f"--products must be between 4 and {len(PRODUCTS)}")
    if options.hours < 16:
        raise ValueError("--hours must be at least 16")
    if directory.exists() and any(directory.iterdir()):
        raise FileExistsError(f"{directory} exists and is not empty")
    rng = random.Random(options.seed)
    names = PRODUCTS[: options.products]
    files = {
        (p, h): File(
            p,
            h,
            f"{p}/{(DAY + timedelta(hours=h)):%Y%m%d}/{p}_{(DAY + timedelta(hours=h)):%H%M}.dat",
            rng.randbytes(rng.randint(options.min_size, options.max_size)),
        )
        for p in names
        for h in range(options.hours)
    }
    directory.mkdir(parents=True, exist_ok=True)
    for f in files.values():
        path = directory / "ingest" / f.relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f.data)

    def session(name: str, products: tuple[str, ...], first: int, last: int) -> Session:
        s = Session(name, products, first, last)
        s.files = [files[(p, h)] for p in products for h in range(first, last + 1)]
        return s

    old = session("storm 0309", ("radar_a", "radar_b"), 0, 5)
    hail = session("hail case", ("radar_a", "satellite"), 6, 11)
    front = session("front passage", ("radar_b", "satellite"), 9, 13)
    corrupt = files[("satellite", 8)]
    old_label, current_label = f"{POOL}_1_2", f"{POOL}_2_2"
    in_cache = [f for f in front.files if f not in hail.files]
    run = scenario.shipped_run(session(*scenario.SQUALL), hail, in_cache, current_label)
    capacity = run.tape_used * 10 // 6  # the shipped playbook leaves the tape 60% full

    conn = sqlite3.connect(directory / "catalog.sqlite")
    catalog.create(conn)
    site = _Site(directory, conn)
    site.db.table("products").insert_all(
        (
            {
                "product": f.product,
                "time": f.time,
                "relpath": f.relpath,
                "size": len(f.data),
                "digest": f.digest,
            }
            for f in files.values()
        ),
        batch_size=BATCH,
    )
    site.add_session(old, NOW - timedelta(hours=30))
    old_used = site.write_tape(old_label, 0, [(1, old.files)])
    site.add_session(hail, NOW - timedelta(hours=20))
    site.add_session(front, NOW - timedelta(hours=5))
    current_used = site.write_tape(current_label, capacity, [(2, hail.files)])
    # fix the capacity in the old tape's header after the fact: same size as the current
    with open(directory / "tapes" / f"{old_label}.tape", "r+b") as fix:
        fix.write(media.header_bytes(old_label, capacity))
    site.damage(current_label, corrupt)
    site.db.table("tapes").insert_all(
        [
            _tape(old_label, 1, capacity, old_used, "old", 1),
            _tape(current_label, 2, capacity, current_used, "current", 0),
        ]
    )
    for f in in_cache:
        path = directory / "cache" / f.relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f.data)
    for rel in COMMON:
        (directory / rel).mkdir(parents=True)
        (directory / rel / "README").write_text(f"common display data: {rel}\n")
    shown = site.case_in_use([files[("radar_a", 6)], files[("radar_a", 7)]])
    cache_used = sum(len(f.data) for f in in_cache)
    squall_bytes = sum(len(f.data) for f in run.squall.files)
    settings = {
        **catalog.DEFAULTS,
        "cache_capacity": str(max(4000, (cache_used + squall_bytes) * 2)),
        "restore_capacity": str(max(6000, shown + squall_bytes * 3)),
        "common_dirs": json.dumps(list(COMMON)),
        "loaded_tape": current_label,
        "tape_window": options.tape_window,
    }
    site.db.table("settings").insert_all(
        {"key": key, "value": value} for key, value in sorted(settings.items())
    )
    conn.commit()
    conn.close()
    (directory / "reports").mkdir()

    expected = scenario.expected(
        now=NOW,
        options=options,
        products=names,
        tapes=(old_label, current_label),
        capacity=capacity,
        old=old,
        hail=hail,
        front=front,
        in_cache=in_cache,
        corrupt=corrupt,
        case_in_use=CASE_IN_USE,
        run=run,
    )
    (directory / "scenario.json").write_text(json.dumps(expected, indent=2) + "\n")
    return expected


def _tape(
    label: str, number: int, capacity: int, used: int, state: str, protected: int
) -> dict[str, Any]:
    return {
        "label": label,
        "pool": POOL,
        "number": number,
        "capacity": capacity,
        "used": used,
        "state": state,
        "write_protected": protected,
    }


class _Site:
    """The catalog and media being built, for the steps that touch both."""

    def __init__(self, root: Path, conn: sqlite3.Connection) -> None:
        self.root, self.conn = root, conn
        import sqlite_utils  # here: its import costs every `recover` command ~0.1 s

        self.db = sqlite_utils.Database(conn)
        self.ids: dict[str, int] = {}  # file id by relpath, in order of first storage

    def add_session(self, s: Session, created: datetime) -> None:
        """A one-time store session; its files not stored yet go to the cache."""
        stamp = catalog.stamp(created)
        row = {
            "name": s.name,
            "products": json.dumps(sorted(s.products)),
            "time_from": s.time_from,
            "time_to": s.time_to,
            "mode": "one_time",
            "created": stamp,
            "updated": stamp,
        }
        session_id = self.db.table("store_sessions").insert(row).last_pk
        new = [f for f in s.files if f.relpath not in self.ids]
        for f in new:
            self.ids[f.relpath] = len(self.ids) + 1
        self.db.table("files").insert_all(
            (
                {
                    "id": self.ids[f.relpath],
                    "relpath": f.relpath,
                    "product": f.product,
                    "time": f.time,
                    "size": len(f.data),
                    "digest": f.digest,
                    "location": "cache",
                }
                for f in new
            ),
            batch_size=BATCH,
        )
        self.db.table("session_files").insert_all(
            ({"session_id": session_id, "file_id": self.ids[f.relpath]} for f in s.files),
            batch_size=BATCH,
        )

    def write_tape(self, label: str, capacity: int, backups: list[tuple[int, list[File]]]) -> int:
        """A tape holding these backup sessions; returns its committed length."""
        tape_dir = self.root / "tapes"
        tape_dir.mkdir(exist_ok=True)
        with open(tape_dir / f"{label}.tape", "wb") as out:
            header = media.header_bytes(label, capacity)
            out.write(header)
            position = len(header)
            for backup, chosen in backups:
                writer = media.SessionWriter(out, position, backup, len(chosen))
                for f in sorted(chosen, key=lambda x: x.relpath):
                    offset = writer.add(f.relpath, len(f.data), f.digest, io.BytesIO(f.data), "")
                    self.conn.execute(
                        "UPDATE files SET location = 'tape', backup_id = ?, tape_offset = ? "
                        "WHERE relpath = ?",
                        (backup, offset, f.relpath),
                    )
                writer.finish()
                self.db.table("backups").insert(
                    {
                        "id": backup,
                        "tape": label,
                        "written": catalog.stamp(NOW - timedelta(hours=30 - 10 * backup)),
                        "offset": position,
                        "files": len(chosen),
                        "bytes": sum(len(f.data) for f in chosen),
                    }
                )
                position = writer.position
        return position

    def damage(self, label: str, victim: File) -> None:
        """A damaged record on the tape: one data byte of `victim` flipped."""
        offset = self.conn.execute(
            "SELECT tape_offset FROM files WHERE relpath = ?", (victim.relpath,)
        ).fetchone()[0]
        with open(self.root / "tapes" / f"{label}.tape", "r+b") as tape:
            tape.seek(offset + media.RECORD_OVERHEAD - 4 + len(victim.relpath.encode()) + 5)
            byte = tape.read(1)
            tape.seek(-1, 1)
            tape.write(bytes([byte[0] ^ 0xFF]))

    def case_in_use(self, shown: list[File]) -> int:
        """The case being displayed, restored earlier from the hail case; its bytes."""
        case_dir = self.root / "restore" / "review_0309"
        for f in shown:
            (case_dir / f.relpath).parent.mkdir(parents=True, exist_ok=True)
            (case_dir / f.relpath).write_bytes(f.data)
        for common in COMMON:  # relative links to the common data, inside the site
            (case_dir / common.rsplit("/", 1)[-1]).symlink_to(f"../../{common}")
        size = sum(len(f.data) for f in shown)
        self.db.table("cases").insert(
            {
                "name": CASE_IN_USE,
                "directory": "restore/review_0309",
                "session": "hail case",
                "files": len(shown),
                "bytes": size,
                "in_use": 1,
                "restored": catalog.stamp(NOW - timedelta(hours=2)),
            }
        )
        return size
