"""Deterministic generator of an image-archive site with one damaged volume.

Everything derives from `seed`: the same options give byte-identical
catalogs, volume files and scenario.json. Studies are generated one at a time
and their rows flushed in batches (sqlite-utils insert_all), and volume files are
written sequentially, so memory stays flat up to millions of objects.
"""

from __future__ import annotations

import json
import random
import sqlite3
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from runner.errors import SiteError, UsageError
from runner.procedures.archive_volume import catalog as cat
from runner.procedures.archive_volume.media import (
    BLOCK_HEADER_SIZE,
    VolumeWriter,
    checksum,
    damage,
)
from runner.procedures.archive_volume.world.scenario import expected_outcome
from runner.worlds import option

if TYPE_CHECKING:
    import sqlite_utils

FIRST_NAMES = (
    "ANNA",
    "BERND",
    "CARLA",
    "DIRK",
    "EVA",
    "FRANK",
    "GRETA",
    "HANS",
    "INGE",
    "JONAS",
    "KARIN",
    "LUKAS",
    "MARIA",
    "NILS",
    "OLGA",
    "PETER",
    "RITA",
    "SVEN",
)
LAST_NAMES = (
    "MUELLER",
    "SCHMIDT",
    "SCHNEIDER",
    "FISCHER",
    "WEBER",
    "MEYER",
    "WAGNER",
    "BECKER",
    "SCHULZ",
    "HOFFMANN",
    "KOCH",
    "RICHTER",
    "KLEIN",
    "WOLF",
    "NEUMANN",
)
#: modality -> (stations, relative object count): CT and MR studies are large.
MODALITIES = {
    "CT": (("CT01", "CT02"), 1.0),
    "MR": (("MR01", "MR02"), 0.8),
    "CR": (("CR01",), 0.1),
    "DX": (("DX01", "DX02"), 0.1),
    "US": (("US01",), 0.3),
    "MG": (("MG01",), 0.15),
    "NM": (("NM01",), 0.4),
}
_BATCH = 20_000
#: Each table's columns, in the order the generator builds its rows.
_COLUMNS: dict[str, tuple[str, ...]] = {
    "studies": (
        "study_ref",
        "study_uid",
        "accession_number",
        "patient_name",
        "patient_id",
        "modality",
        "station_name",
        "archived_count",
    ),
    "objects": ("object_id", "study_ref", "size", "checksum"),
    "object_locations": ("volume_ref", "ordinal", "object_id", "state"),
    "cache_locations": ("study_ref", "host", "protected"),
    "cached_objects": ("object_id", "host"),
    "volumes": ("volume_ref", "carrier_id", "status", "online", "block_count", "media_path"),
}


_OBJECTS = (1, 40)  # objects per study: MIN, MAX


def _span(text: str) -> tuple[int, int]:
    """`--objects-per-study MIN-MAX` (or just N)."""
    try:
        low, _, high = text.partition("-")
        return int(low), int(high or low)
    except ValueError as exc:
        raise UsageError(f"{text!r} is not MIN-MAX, e.g. 1-40") from exc


def _media(text: str) -> str:
    if text not in ("all", "none"):
        raise UsageError(f"{text!r} is not one of 'all', 'none'")
    return text


@dataclass
class Options:
    """The generator's knobs; the option() ones are `recover world archive` options."""

    seed: int = option(1, "Random seed.")
    studies: int = option(200, "Number of studies.")
    #: Command line only: sets objects_min and objects_max (scenario.json records those).
    objects_per_study: tuple[int, int] | None = option(
        None,
        "MIN-MAX objects per study (CT/MR near MAX, CR/DX few).",
        parse=_span,
        shown_default=f"{_OBJECTS[0]}-{_OBJECTS[1]}",
    )
    objects_min: int = _OBJECTS[0]
    objects_max: int = _OBJECTS[1]
    volumes: int = option(6, "Archive volumes VOL0001..; the last one is open, the others closed.")
    volumes_per_carrier: int = option(2, "Volumes sharing one carrier (platter sides).")
    damaged: str = option("VOL0002", "volume_ref of the damaged (closed, offline) volume.")
    copy_fraction: float = option(
        0.45, "Share of studies with a second copy of every object on another volume."
    )
    partial_copy_fraction: float = option(
        0.2, "Share of studies with second copies of some objects."
    )
    cached_fraction: float = option(0.2, "Share of studies with (some) objects in the cache.")
    damage_ranges: int = option(3, "Number of unreadable ordinal ranges on the damaged volume.")
    damaged_fraction: float = option(
        0.2, "Share of the damaged volume's blocks that are unreadable."
    )
    damage_to_end: bool = option(False, "Let the last unreadable range run to the volume's end.")
    block_size: int = option(256, "Bytes per volume block.")
    spare_blocks: int = 500  # free blocks left on the open volume
    media: str = option(
        "all",
        "'none' writes only the catalog (catalog benchmarks).",
        parse=_media,
        metavar="[all|none]",
    )
    cache_host: str = cat.DEFAULT_CACHE_HOST

    def __post_init__(self) -> None:
        if self.objects_per_study is not None:
            self.objects_min, self.objects_max = self.objects_per_study

    def recorded(self) -> dict[str, Any]:
        """The options as scenario.json records them (MIN and MAX, not the span)."""
        values = asdict(self)
        del values["objects_per_study"]
        return values

    def validate(self) -> None:
        refs = [volume_ref(i) for i in range(1, self.volumes + 1)]
        problems = []
        if self.volumes < 3:
            problems.append("--volumes must be at least 3 (damaged, another, open)")
        elif self.damaged not in refs[:-1]:
            problems.append(f"--damaged must be a closed volume: {refs[0]}..{refs[-2]}")
        if not 1 <= self.objects_min <= self.objects_max:
            problems.append("--objects-per-study needs 1 <= MIN <= MAX")
        if self.studies < 1:
            problems.append("--studies must be at least 1")
        if self.block_size < BLOCK_HEADER_SIZE + 40:
            problems.append(f"--block-size must be at least {BLOCK_HEADER_SIZE + 40}")
        for name in (
            "copy_fraction",
            "partial_copy_fraction",
            "cached_fraction",
            "damaged_fraction",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"--{name.replace('_', '-')} must be between 0 and 1")
        if self.media not in ("all", "none"):
            problems.append("--media is all or none")
        if problems:
            raise UsageError("; ".join(problems))


def volume_ref(index: int) -> str:
    return f"VOL{index:04d}"


def carrier_id(index: int, per_carrier: int) -> str:
    return f"CAR{(index - 1) // per_carrier + 1:03d}"


def generate(root: Path, options: Options) -> dict[str, Any]:
    """Build the site under `root` (empty or missing) and return scenario.json's data."""
    options.validate()
    if root.exists() and any(root.iterdir()):
        raise SiteError(f"{root} is not empty", fix="generate into a new or empty directory")
    root.mkdir(parents=True, exist_ok=True)
    (root / cat.VOLUMES_DIR).mkdir()
    (root / cat.CACHE_DIR).mkdir()
    # Imported here, not at the top: every recover command loads this module
    # (the registry builds the world command from Options), only this needs it.
    import sqlite_utils

    conn = sqlite3.connect(root / cat.CATALOG_DEFAULT, isolation_level=None)
    try:
        db = sqlite_utils.Database(conn)
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("BEGIN")
        cat.create_tables(db)
        generator = _Generator(root, options, db)
        generator.run()
        conn.execute("COMMIT")
        cat.create_indexes(db)
        conn.execute("PRAGMA journal_mode = DELETE")
    finally:
        conn.close()
    # The expected outcome is computed the way the actions see the catalog: attached.
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        conn.execute(
            f"ATTACH DATABASE ? AS {cat.CATALOG_ALIAS}", (str(root / cat.CATALOG_DEFAULT),)
        )
        scenario = expected_outcome(conn, options.damaged, generator.damage_ranges)
    finally:
        conn.close()
    scenario = {"options": options.recorded(), **scenario}
    (root / "scenario.json").write_text(json.dumps(scenario, indent=1) + "\n")
    return scenario


class _Generator:
    def __init__(self, root: Path, options: Options, db: sqlite_utils.Database) -> None:
        self.root = root
        self.o = options
        self.db = db
        self.rng = random.Random(options.seed)
        self.refs = [volume_ref(i) for i in range(1, options.volumes + 1)]
        self.master = random.Random(options.seed ^ 0x5EED).randbytes(1 << 16)
        self.capacity = options.block_size - BLOCK_HEADER_SIZE
        self.rows: dict[str, list[tuple[Any, ...]]] = {
            "studies": [],
            "objects": [],
            "object_locations": [],
            "cache_locations": [],
            "cached_objects": [],
        }
        self.next_ordinal = dict.fromkeys(self.refs, 0)
        self.writers: dict[str, VolumeWriter] = {}
        self.damage_ranges: list[tuple[int, int]] = []
        self.handles: dict[str, BinaryIO] = {}

    def run(self) -> None:
        o = self.o
        with ExitStack() as stack:
            if o.media == "all":
                for ref in self.refs:
                    handle = stack.enter_context(open(self.root / _media_path(ref), "w+b"))
                    self.handles[ref] = handle
                    self.writers[ref] = VolumeWriter(handle, ref, o.block_size)
            object_id = 0
            for index in range(o.studies):
                object_id = self._study(index, object_id)
                if len(self.rows["object_locations"]) >= _BATCH:
                    self._flush()
            self._flush()
            self._volumes()
            self._damage()

    def _study(self, index: int, object_id: int) -> int:
        """One study: metadata, objects, primary and second copies, cache."""
        o, rng = self.o, self.rng
        modality = rng.choice(tuple(MODALITIES))
        stations, weight = MODALITIES[modality]
        span = o.objects_max - o.objects_min
        count = o.objects_min + round(span * weight * rng.random())
        study_ref = f"ST{index + 1:08d}"
        patient = rng.randrange(1, max(2, o.studies // 3) + 1)
        prng = random.Random(patient * 7919 + o.seed)
        self.rows["studies"].append(
            (
                study_ref,
                f"1.2.826.0.1.3680043.9.{o.seed}.{index + 1}",
                f"ACC{o.seed % 100:02d}{index + 1:07d}",
                f"{prng.choice(LAST_NAMES)}^{prng.choice(FIRST_NAMES)}",
                f"PID{patient:07d}",
                modality,
                rng.choice(stations),
                0,  # archived_count, set once the locations are known
            )
        )
        primary = self.refs[min(index * len(self.refs) // o.studies, len(self.refs) - 1)]
        policy = rng.random()
        full_copy = policy < o.copy_fraction
        partial_copy = not full_copy and policy < o.copy_fraction + o.partial_copy_fraction
        copy_vol = rng.choice([r for r in self.refs if r != primary])
        cache_policy = rng.random()
        cached_all = cache_policy < o.cached_fraction * 0.6
        cached_some = not cached_all and cache_policy < o.cached_fraction
        archived = 0
        cached_any = False
        for _ in range(count):
            object_id += 1
            size = rng.randint(16, min(200, self.capacity))
            payload = self._payload(object_id, size)
            self.rows["objects"].append((object_id, study_ref, size, checksum(payload)))
            self._place(primary, object_id, payload)
            archived += 1
            if full_copy or (partial_copy and rng.random() < 0.5):
                self._place(copy_vol, object_id, payload)
                archived += 1
            if cached_all or (cached_some and rng.random() < 0.5):
                cached_any = True
                self.rows["cached_objects"].append((object_id, o.cache_host))
                if o.media == "all":
                    folder = self.root / cat.CACHE_DIR / study_ref
                    folder.mkdir(exist_ok=True)
                    (folder / str(object_id)).write_bytes(payload)
        study = self.rows["studies"][-1]
        self.rows["studies"][-1] = (*study[:-1], archived)
        if cached_any:
            self.rows["cache_locations"].append((study_ref, o.cache_host, 0))
        return object_id

    def _payload(self, object_id: int, size: int) -> bytes:
        """Deterministic, distinct object bytes without a per-object RNG."""
        offset = (object_id * 2654435761) % (len(self.master) - size)
        return object_id.to_bytes(8, "little") + self.master[offset : offset + size - 8]

    def _place(self, ref: str, object_id: int, payload: bytes) -> None:
        if self.writers:
            ordinal = self.writers[ref].append(object_id, payload)
        else:
            ordinal = self.next_ordinal[ref]
        self.next_ordinal[ref] = ordinal + 1
        self.rows["object_locations"].append((ref, ordinal, object_id, cat.GOOD))

    def _flush(self) -> None:
        for table, rows in self.rows.items():
            if rows:
                self.db.table(table).insert_all([_COLUMNS[table], *rows], batch_size=_BATCH)
                rows.clear()

    def _volumes(self) -> None:
        """Volumes and carriers: the last volume is open, the damaged one offline."""
        o = self.o
        damaged_carrier = carrier_id(self.refs.index(o.damaged) + 1, o.volumes_per_carrier)
        open_carrier = carrier_id(len(self.refs), o.volumes_per_carrier)
        carriers = sorted(
            {carrier_id(i, o.volumes_per_carrier) for i in range(1, len(self.refs) + 1)}
        )
        loaded = {}
        for carrier in carriers:
            if carrier == damaged_carrier:
                loaded[carrier] = 0
            elif carrier == open_carrier:
                loaded[carrier] = 1
            else:
                loaded[carrier] = int(self.rng.random() < 0.5)
        self.db.table("carriers").insert_all([("carrier_id", "loaded"), *loaded.items()])
        volumes: list[tuple[Any, ...]] = [_COLUMNS["volumes"]]
        for i, ref in enumerate(self.refs, start=1):
            is_open = i == len(self.refs)
            spare = o.spare_blocks if is_open else 0
            blocks = self.next_ordinal[ref] + spare
            if self.writers:
                blocks = self.writers[ref].finish(spare).block_count
            carrier = carrier_id(i, o.volumes_per_carrier)
            volumes.append(
                (
                    ref,
                    carrier,
                    "open" if is_open else "closed",
                    loaded[carrier],
                    blocks,
                    _media_path(ref),
                )
            )
        self.db.table("volumes").insert_all(volumes)

    def _damage(self) -> None:
        """Choose the unreadable ranges of the damaged volume and break those blocks."""
        o = self.o
        used = self.next_ordinal[o.damaged]
        ranges: list[tuple[int, int]] = []
        if used and o.damage_ranges and o.damaged_fraction > 0:
            k = min(o.damage_ranges, used)
            segment = used // k
            length = max(1, int(used * o.damaged_fraction / k))
            for n in range(k):
                start = n * segment
                stop = used if n == k - 1 else start + segment
                length_here = min(length, stop - start)
                begin = start + self.rng.randrange(0, stop - start - length_here + 1)
                ranges.append((begin, begin + length_here - 1))
            if o.damage_to_end:
                ranges[-1] = (ranges[-1][0], used - 1)
        self.damage_ranges = ranges  # the site starts unscanned: scan_volume finds them
        if self.writers:
            writer = self.writers[o.damaged]
            for begin, end in ranges:
                damage(self.handles[o.damaged], writer.header, begin, end)


def _media_path(ref: str) -> str:
    return f"{cat.VOLUMES_DIR}/{ref}.vol"
