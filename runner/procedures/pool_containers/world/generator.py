"""A deterministic repository whose database and pools come from backups of different ages.

Most elements are healthy. The damaged ones each belong to one category
(see categories.CATEGORIES) and the generator knows, from how it built them, what a
force+fix run under the scenario's window must do with each: that is written
to scenario.json (see scenario.py), computed from the construction and never
by running the algorithm.
"""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.clock import parse_moment
from runner.procedures.pool_containers import catalog, media
from runner.procedures.pool_containers.world.categories import (
    CATEGORIES,
    MAKERS,
    Expect,
    healthy,
)
from runner.procedures.pool_containers.world.scenario import scenario
from runner.worlds import option

if TYPE_CHECKING:
    import sqlite_utils

NOW = datetime(2026, 1, 15, 12, 0, 0, tzinfo=UTC)
SOURCE_POOLS = ("sdft", "s2")
CLEARTEXT_POOL = "cdft"
FLUSH_EVERY = 2000
BATCH = 500  # rows per INSERT statement of the bulk inserts
#: the columns of the rows the builder collects, per table, in insert order
COLUMNS: dict[str, tuple[str, ...]] = {
    "elements": ("id", "oid", "path", "type_manager"),
    "branches": ("id", "element_id", "name"),
    "versions": ("id", "branch_id", "number", "created_at", "data", "data_gone_at"),
    "containers": ("id", "element_id", "pool", "type_manager", "relpath"),
    "container_versions": ("container_id", "version_id"),
}


def _now(text: str) -> datetime:
    return parse_moment(text, f"--now {text!r}")


def _window(text: str) -> datetime:
    return parse_moment(text, f"--window {text!r}")


@dataclass(frozen=True)
class Options:
    seed: int = option(7, "Random seed (same seed, same site).")
    elements: int = option(60, "Number of elements.")
    damaged: float = option(0.1, "Share of elements that are damaged (at least one per category).")
    cleartext: float = option(0.05, "Share of healthy versions that also have a cleartext copy.")
    # option() returns a dataclass field, not a shared mutable default:
    now: datetime = option(  # noqa: RUF009
        NOW,
        "The repository's present (pin the run with RECOVER_NOW to the same value).",
        parse=_now,
    )
    window: datetime | None = option(  # noqa: RUF009
        None,
        "Start of the allowed-data-loss window the scenario assumes",
        parse=_window,
        shown_default="yesterday 00:00 of --now",
    )

    def since(self) -> datetime:
        """The window's start: --window, else yesterday 00:00 of `now`."""
        if self.window is not None:
            return self.window
        return datetime.combine(self.now.date(), time(0), tzinfo=self.now.tzinfo) - timedelta(
            days=1
        )


@dataclass
class V:
    id: int
    branch: str
    number: int
    created: datetime
    data: bytes

    @property
    def key(self) -> tuple[str, int]:
        return (self.branch, self.number)


class Builder:
    """Writes the site: catalog rows in bulk, container files one by one."""

    def __init__(self, root: Path, opts: Options) -> None:
        self.root = root
        self.opts = opts
        self.rng = random.Random(opts.seed)
        self.since = opts.since()
        self.conn = sqlite3.connect(root / "catalog.sqlite")
        self.conn.execute("PRAGMA journal_mode=OFF")
        self.conn.execute("PRAGMA synchronous=OFF")
        catalog.create(self.conn)
        # Imported here, not at the top: every `recover` command loads this module
        # (the registry), and sqlite-utils takes ~0.3 s to import.
        import sqlite_utils

        self.db: sqlite_utils.Database = sqlite_utils.Database(self.conn)
        self.rows: dict[str, list[tuple[Any, ...]]] = {t: [] for t in COLUMNS}
        self.ids = {"branch": 0, "version": 0, "container": 0, "file": 0}
        self.dirs: set[Path] = set()
        self.files = 0
        self.totals = {"containers": 0, "missing": 0, "cleartext": 0, "unreferenced": 0}

    # -- ids and files -----------------------------------------------------
    def next(self, kind: str) -> int:
        self.ids[kind] += 1
        return self.ids[kind]

    def pool_dir(self, pool: str) -> Path:
        return self.root / "pools" / pool

    def write(self, pool: str, rel: str, blob: bytes) -> None:
        path = self.pool_dir(pool) / rel
        if path.parent not in self.dirs:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.dirs.add(path.parent)
        path.write_bytes(blob)
        self.files += 1

    def name(self, oid: str, tm: str) -> str:
        return f"{oid[:2]}/{oid}-{self.next('file')}.{media.TM_EXTENSIONS[tm]}"

    # -- the repository ----------------------------------------------------
    def history(self, oid: str, path: str, main: int, dev: int | None, shape: str) -> list[V]:
        """/main/0..main then /main/dev/0..dev in creation order, with creation times.

        shape: "any" (healthy), "recent:N" (the newest N created inside the
        window, the others before it), "old" (all before the window).
        """
        order = [("/main", n) for n in range(main + 1)]
        if dev is not None:
            order += [("/main/dev", n) for n in range(dev + 1)]
        rng, now, since = self.rng, self.opts.now, self.since
        recent = int(shape.split(":")[1]) if shape.startswith("recent:") else 0
        inside = (now - since).total_seconds()
        stamps = sorted(
            since + timedelta(seconds=rng.uniform(0.05, 0.95) * inside) for _ in range(recent)
        )
        if recent or shape == "old":
            newest = since - timedelta(hours=rng.uniform(1, 72))
        else:
            newest = now - timedelta(hours=rng.uniform(1, 24 * 40))
        older = [newest]
        while len(older) < len(order) - recent:
            older.append(older[-1] - timedelta(hours=rng.uniform(1, 96)))
        times = list(reversed(older[: len(order) - recent])) + stamps
        return [
            V(0, branch, number, created.replace(microsecond=0), data_for(oid, branch, number))
            for (branch, number), created in zip(order, times, strict=True)
        ]

    def new_element(
        self, index: int, tm: str, main: int, dev: int | None = None, shape: str = "any"
    ) -> tuple[str, list[V]]:
        oid = f"{self.rng.getrandbits(128):032x}"
        ext = "bin" if tm == "whole_copy" else "c"
        path = f"/vobs/proj/src/d{index % 97:02d}/file_{index:06d}.{ext}"
        versions = self.history(oid, path, main, dev, shape)
        self.rows["elements"].append((index, oid, path, tm))
        branches: dict[str, int] = {}
        for v in versions:
            if v.branch not in branches:
                branches[v.branch] = self.next("branch")
                self.rows["branches"].append((branches[v.branch], index, v.branch))
            v.id = self.next("version")
            self.rows["versions"].append(
                (v.id, branches[v.branch], v.number, catalog.stamp(v.created), "present", None)
            )
        return oid, versions

    def container(
        self, eid: int, oid: str, tm: str, versions: list[V], *, present: bool = True
    ) -> str:
        """A referenced container, written to its pool unless `present` is False."""
        pool = "sdft" if self.rng.random() < 0.85 else "s2"
        cid = self.next("container")
        rel = self.name(oid, tm)
        self.rows["containers"].append((cid, eid, pool, tm, rel))
        self.rows["container_versions"].extend((cid, v.id) for v in versions)
        self.totals["containers"] += 1
        if present:
            self.write(pool, rel, encode(oid, tm, versions))
        else:
            self.totals["missing"] += 1
        return f"{pool}/{rel}"

    def alternate(self, oid: str, tm: str, versions: list[V]) -> Path:
        pool = self.rng.choice(SOURCE_POOLS)
        rel = self.name(oid, tm)
        self.write(pool, rel, encode(oid, tm, versions))
        self.totals["unreferenced"] += 1
        return self.pool_dir(pool) / rel

    def cleartext(self, oid: str, v: V) -> None:
        rel = f"{oid[:2]}/{oid}{v.branch.replace('/', '.')}.{v.number}.ct"
        self.write(CLEARTEXT_POOL, rel, encode(oid, "whole_copy", [v]))
        self.totals["cleartext"] += 1

    def extra(self, oid: str, versions: list[V], count: int) -> list[V]:
        """Versions newer than the database knows (a pool restored from a newer backup)."""
        last = max(v.number for v in versions if v.branch == "/main")
        newest = max(v.created for v in versions)
        return [
            V(0, "/main", n, newest + timedelta(hours=k + 1), data_for(oid, "/main", n))
            for k, n in enumerate(range(last + 1, last + 1 + count))
        ]

    def corrupt(self, path: Path) -> None:
        corrupt_file(path)

    def flush(self) -> None:
        for table, columns in COLUMNS.items():
            rows = (dict(zip(columns, row, strict=True)) for row in self.rows[table])
            self.db.table(table).insert_all(rows, batch_size=BATCH)
            self.rows[table].clear()
        self.conn.commit()


def data_for(oid: str, branch: str, number: int) -> bytes:
    """A version's content: a function of its identity only, so every copy agrees."""
    if number == 0:
        return b""
    seed = hashlib.sha256(f"{oid}{branch}/{number}".encode()).digest()
    lines = 1 + seed[0] % 6
    body = b"".join(
        b"line %d: %s\n" % (i, hashlib.sha256(seed + bytes([i])).hexdigest().encode())
        for i in range(lines)
    )
    return f"{oid}@@{branch}/{number}\n".encode() + body


def encode(oid: str, tm: str, versions: list[V]) -> bytes:
    return media.encode(oid, tm, [(v.branch, v.number, v.data) for v in versions])


def corrupt_file(path: Path, key: tuple[str, int] | None = None) -> None:
    """Flip one byte inside a version's stored data (the header stays intact)."""
    blob = bytearray(path.read_bytes())
    with path.open("rb") as handle:
        header = media.read_header(handle, str(path))
    entries = [e for e in header.entries if e.stored > 0 and (key is None or e.key == key)]
    entry = entries[-1]
    blob[header.data_start + entry.offset + entry.stored // 2] ^= 0x5A
    path.write_bytes(bytes(blob))


def generate(root: Path, opts: Options) -> dict[str, Any]:
    """Generate the site under `root` (which must not hold a catalog yet); return the scenario."""
    per = max(1, round(opts.elements * opts.damaged / len(CATEGORIES)))
    slots = [c for c in MAKERS for _ in range(per)]
    if len(slots) > opts.elements:
        raise ValueError(
            f"--elements {opts.elements} is too few for {len(slots)} damaged elements "
            f"({per} per category); give at least {len(slots)} or lower --damaged"
        )
    if opts.since() > opts.now:
        raise ValueError("the window must not start after --now")
    root.mkdir(parents=True, exist_ok=True)
    if (root / "catalog.sqlite").exists():
        raise FileExistsError(f"{root} already holds a catalog.sqlite")
    b = Builder(root, opts)
    for pool in (*SOURCE_POOLS, CLEARTEXT_POOL):
        (b.pool_dir(pool) / "lost+found").mkdir(parents=True, exist_ok=True)
    b.db.table("pools").insert_all(
        [{"name": p, "path": f"pools/{p}", "kind": "source"} for p in SOURCE_POOLS]
        + [{"name": CLEARTEXT_POOL, "path": f"pools/{CLEARTEXT_POOL}", "kind": "cleartext"}]
    )
    slots += ["healthy"] * (opts.elements - len(slots))
    b.rng.shuffle(slots)
    expects: list[Expect] = []
    for index, category in enumerate(slots, start=1):
        maker = MAKERS.get(category, healthy)
        expect = maker(b, index)
        if expect.category != "healthy":
            expect.path = b.rows["elements"][-1][2]
            expects.append(expect)
        if index % FLUSH_EVERY == 0:
            b.flush()
    for _ in range(per):  # containers of elements the database never heard of
        oid = f"{b.rng.getrandbits(128):032x}"
        versions = [V(0, "/main", n, opts.now, data_for(oid, "/main", n)) for n in range(2)]
        b.alternate(oid, "delta", versions)
    b.flush()
    b.conn.close()
    expected = scenario(b, opts, per, expects)
    (root / "scenario.json").write_text(json.dumps(expected, indent=2) + "\n", encoding="utf-8")
    return expected
