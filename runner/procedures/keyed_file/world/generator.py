"""Deterministic keyed-file sites with the domain note's four kinds of crash damage.

`generate(directory, Options(...))` writes `files/<name>.dat`, `files/<name>.key`
and `scenario.json`, streaming: records are made and written in chunks, key
entries go through the same bounded-memory sorter and bulk loader as reload,
so millions of records take seconds and little memory.

Damage (combinable), as a crash leaves it:
- eof: records were being added; FS EOF lags the keyed EOF by `eof_behind`.
- dangling: key blocks reached disk before the data: every key holds
  `dangling` values for records past the keyed EOF.
- split: a key block split reached disk, the new key-file EOF did not: the
  control block's key-file EOF lies half a block before the end of the
  largest key block.
- missing: records were being deleted; the alternate keys were updated
  (last key first), the data record's deleted mark was not: `missing` valid
  records lack values in the last j keys (1 <= j < keys; with one key, in it).
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runner.errors import UsageError
from runner.procedures.keyed_file.bulkload import KeyFeeder, build_key_file
from runner.procedures.keyed_file.media import (
    DELETED,
    LIVE,
    MAX_KEYS,
    Control,
    DataHeader,
    KeyDescriptor,
    too_long_keys,
)
from runner.procedures.keyed_file.records import recno_bytes
from runner.procedures.keyed_file.sorter import scratch_dir
from runner.procedures.keyed_file.world.scenario import expected_scenario
from runner.worlds import option

DAMAGE_KINDS = ("eof", "dangling", "split", "missing")
KEY_LENGTHS = (10, 12, 8, 10, 8, 12, 8, 10)
CHUNK = 8192
PRIME = 2_147_483_647  # key 1 = (A*r + B) mod PRIME is unique for r < PRIME
MULTIPLIER = 48_271
CREATED = datetime(2025, 11, 3, 8, 0, tzinfo=UTC)


def parse_damage(text: str) -> tuple[str, ...]:
    """--damage: kinds comma-separated (repeats arrive joined by commas), `all`
    for every kind; each kind once, in the order given."""
    kinds: list[str] = []
    for part in text.split(","):
        part = part.strip()
        if part == "all":
            kinds.extend(DAMAGE_KINDS)
        elif part in DAMAGE_KINDS:
            kinds.append(part)
        elif part:
            raise ValueError(
                f"{part!r} is not a damage kind; choose from {', '.join(DAMAGE_KINDS)} or all"
            )
    return tuple(dict.fromkeys(kinds))


def parse_key_lengths(text: str) -> tuple[int, ...]:
    """--key-lengths: bytes per key, comma-separated; empty means the defaults."""
    try:
        return tuple(int(x) for x in text.split(",")) if text else ()
    except ValueError:
        raise ValueError("give whole numbers, e.g. 42,42") from None


@dataclass
class Options:
    """What to generate. The field order is the order of `spec` in scenario.json."""

    records: int = option(10_000, "Records below the keyed EOF, deleted ones included.")
    keys: int = option(3, "Number of keys (1 primary + alternates).")
    damage: tuple[str, ...] = option(
        (),
        f"Crash damage to leave: {', '.join(DAMAGE_KINDS)} or all; repeat or "
        "comma-separate to combine.",
        parse=parse_damage,
        metavar="KIND",
        multiple=True,
    )
    seed: int = option(1, "Random seed (same seed, same site).")
    name: str = option("customers", "File name stem.")
    record_length: int | None = option(
        None, "Record payload bytes.", shown_default="keys + 16, >= 64"
    )
    key_lengths: tuple[int, ...] = option(
        (),
        "Bytes per key, comma-separated.",
        parse=parse_key_lengths,
        metavar="N,N,...",
        shown_default="10,12,8,...",
    )
    sectors_per_block: int = option(8, "Key block size in sectors.")
    fill_percent: int = option(80, "Key block fill when built.")
    deleted_percent: float = option(5.0, "Share of records deleted before the crash.")
    eof_behind: int | None = option(None, "eof: records the FS EOF lags.", shown_default="1%")
    dangling: int | None = option(
        None, "dangling: key values per key past the EOF.", shown_default="0.5%"
    )
    missing: int | None = option(None, "missing: records missing key values.", shown_default="0.5%")
    crashed: bool | None = option(
        None,
        "Crash flag.",
        shown_default="set when there is damage",
        flag_names=("--crashed/--not-crashed",),
    )
    memory_mb: int = 64  # not on the command line
    extra: dict[str, Any] = field(default_factory=dict)

    def resolved(self) -> Options:
        """Fill in defaults that depend on the size and check the combination."""
        bad = sorted(set(self.damage) - set(DAMAGE_KINDS))
        if bad:
            raise UsageError(
                f"unknown damage kind(s) {', '.join(bad)}",
                fix=f"choose from {', '.join(DAMAGE_KINDS)}",
            )
        if not 1 <= self.keys <= MAX_KEYS:
            raise UsageError(f"--keys must be 1..{MAX_KEYS}")
        if not 0 <= self.records < PRIME - 10**6:
            raise UsageError("--records is out of range")
        lengths = self.key_lengths or tuple(
            KEY_LENGTHS[i % len(KEY_LENGTHS)] for i in range(self.keys)
        )
        if len(lengths) != self.keys or lengths[0] < 10 or min(lengths) < 1:
            raise UsageError("give one key length per key; key 1 needs at least 10 bytes")
        record_length = self.record_length or max(64, sum(lengths) + 16)
        if record_length < sum(lengths):
            raise UsageError(
                f"--record-length {record_length} cannot hold keys of {sum(lengths)} bytes"
            )
        some = max(1, self.records // 100)
        spec = Options(
            **{
                **asdict(self),
                "key_lengths": tuple(lengths),
                "record_length": record_length,
                "damage": tuple(self.damage),
            }
        )
        spec.eof_behind = (
            min(self.records, self.eof_behind if self.eof_behind is not None else some)
            if "eof" in self.damage
            else 0
        )
        spec.dangling = (
            (self.dangling if self.dangling is not None else max(1, some // 2))
            if "dangling" in self.damage
            else 0
        )
        spec.missing = (
            (self.missing if self.missing is not None else max(1, some // 2))
            if "missing" in self.damage
            else 0
        )
        if spec.crashed is None:
            spec.crashed = bool(self.damage)
        return spec


def key1_value(recno: int, seed: int, length: int) -> bytes:
    return b"%0*d" % (length, (MULTIPLIER * recno + seed * 7919 + 1) % PRIME)


def generate(directory: Path, spec: Options) -> dict[str, Any]:
    """Write the site; return the scenario (also saved as scenario.json)."""
    spec = spec.resolved()
    assert spec.record_length is not None
    rng = random.Random(spec.seed)
    n, nkeys = spec.records, spec.keys
    files = directory / "files"
    files.mkdir(parents=True, exist_ok=True)
    data_rel, key_rel = f"files/{spec.name}.dat", f"files/{spec.name}.key"
    descriptors, pos = [], 0
    for i, length in enumerate(spec.key_lengths):
        descriptors.append(KeyDescriptor(pos, length, i > 0, 0))
        pos += length
    control = Control(
        spec.sectors_per_block,
        spec.record_length,
        bool(spec.crashed),
        0,
        int(CREATED.timestamp()),
        "generator",
        tuple(descriptors),
    )
    if long := too_long_keys(control):
        raise UsageError(f"key {long[0]} is too long for {spec.sectors_per_block}-sector blocks")
    threshold = int(256 * spec.deleted_percent / 100)
    deleted = rng.randbytes(n).translate(
        bytes(DELETED if b < threshold else LIVE for b in range(256))
    )
    missing_in = _pick_missing(rng, deleted, spec)
    spread = max(1, n // 4)

    def values(recno: int) -> list[bytes]:
        out = [key1_value(recno, spec.seed, descriptors[0].length)]
        for key in descriptors[1:]:
            out.append(b"%0*d" % (key.length, rng.randrange(spread) % 10**key.length))
        return out

    filler_len = spec.record_length - pos
    with scratch_dir() as scratch:
        feeder = KeyFeeder(descriptors, spec.memory_mb << 20, scratch)
        try:
            with open(directory / data_rel, "wb") as out:
                fs_eof = n - (spec.eof_behind or 0)
                out.write(DataHeader(spec.record_length, fs_eof, n).encode())
                for first in range(0, n, CHUNK):
                    count = min(CHUNK, n - first)
                    slots = []
                    for recno in range(first, first + count):
                        filler = (b"%d" % recno).rjust(filler_len, b".")[-filler_len:]
                        slots.append(bytes((deleted[recno],)) + b"".join(values(recno)) + filler)
                    out.write(b"".join(slots))
                    _feed(feeder, slots, first, deleted, missing_in)
            for recno in range(n, n + (spec.dangling or 0)):
                slot = [bytes((LIVE,)) + b"".join(values(recno)).ljust(spec.record_length)]
                feeder.add(slot, recno_bytes(recno, 1))
            with open(directory / key_rel, "wb") as out:
                final, loads = build_key_file(
                    out, control, feeder, fill_percent=spec.fill_percent, order=range(nkeys, 0, -1)
                )
                largest = max(load.largest_address for load in loads)
                key_eof = final.key_eof
                if "split" in spec.damage:
                    key_eof = max(4, largest - spec.sectors_per_block // 2)
                    if spec.sectors_per_block == 1:
                        key_eof = largest
                out.seek(0)
                out.write(final.with_(key_eof=key_eof).encode())
        finally:
            feeder.close()
    scenario = expected_scenario(
        spec, data_rel, key_rel, deleted, missing_in, loads, key_eof, final.key_eof, largest
    )
    text = json.dumps(scenario, indent=2) + "\n"
    (directory / "scenario.json").write_text(text)
    return dict(json.loads(text))


def _pick_missing(rng: random.Random, deleted: bytes, spec: Options) -> dict[int, int]:
    """recno -> j: an interrupted delete removed the record from the last j keys."""
    live = len(deleted) - deleted.count(DELETED)
    want = min(spec.missing or 0, live)
    out: dict[int, int] = {}
    while len(out) < want:
        recno = rng.randrange(len(deleted))
        if deleted[recno] == LIVE and recno not in out:
            out[recno] = 1 + rng.randrange(spec.keys - 1) if spec.keys > 1 else 1
    return out


def _feed(
    feeder: KeyFeeder, slots: list[bytes], first: int, deleted: bytes, missing_in: dict[int, int]
) -> None:
    numbers = recno_bytes(first, len(slots))
    live = [i for i in range(len(slots)) if deleted[first + i] == LIVE]
    nkeys = len(feeder.keys)
    for key_index in range(nkeys):
        keep = [i for i in live if nkeys - missing_in.get(first + i, 0) > key_index]
        feeder.add_key(key_index, [slots[i] for i in keep], [numbers[i] for i in keep])
