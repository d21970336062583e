"""A deterministic inventory site: catalog, shelf file with damaged records, scenario."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recover_inventory import catalog, media
from recover_inventory.world.scenario import expected
from runner.worlds import option

PARTS = ("bolt", "bracket", "gasket", "hinge", "nut", "spring", "valve", "washer")


@dataclass
class Options:
    seed: int = option(1, "Random seed (same seed, same site).")
    items: int = option(40, "Items in the catalog.")
    damaged: int = option(3, "Shelf records to damage (their items are lost on purge).")


def generate(directory: Path, options: Options) -> dict[str, Any]:
    """Write the site under `directory`; returns (and writes) scenario.json."""
    if options.items < 1 or not 0 <= options.damaged <= options.items:
        raise ValueError("need --items >= 1 and 0 <= --damaged <= --items")
    rng = random.Random(options.seed)
    items = [
        {"id": i, "name": f"{rng.choice(PARTS)} {rng.randint(1, 999):03d}", "bin": f"B{i % 7:02d}"}
        for i in range(1, options.items + 1)
    ]
    damaged = sorted(rng.sample(range(1, options.items + 1), options.damaged))
    (directory / "media").mkdir(parents=True, exist_ok=True)
    catalog.create(directory / "catalog.sqlite", items)
    shelf = b"".join(
        _damage(line) if item["id"] in damaged else line
        for item in items
        for line in [media.encode(item["id"], item["name"])]
    )
    (directory / "media" / "shelf.dat").write_bytes(shelf)
    scenario = expected(items, damaged)
    (directory / "scenario.json").write_text(json.dumps(scenario, indent=2) + "\n")
    return scenario


def _damage(line: bytes) -> bytes:
    """The record with its name's first letter overwritten: the id still reads,
    the checksum no longer matches."""
    at = line.index(b"\t") + 1
    return line[:at] + b"#" + line[at + 1 :]
