"""The expected outcome of a generated keyed site, as scenario.json records it.

What a correct recovery finds: the damage the generator left, and the figures
verify, repair, count and reload must report. Computed from the options and
what the generator drew, never by reading the files back.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from runner.procedures.keyed_file.media import DATA_HEADER_SIZE, DELETED

if TYPE_CHECKING:
    from runner.procedures.keyed_file.world.generator import Options


def expected_scenario(
    spec: Options,
    data_rel: str,
    key_rel: str,
    deleted: bytes,
    missing_in: dict[int, int],
    loads: list[Any],
    key_eof: int,
    true_eof: int,
    largest: int,
) -> dict[str, Any]:
    """scenario.json: the options, the pair, and what verify, repair, count and
    reload must find on it."""
    n, nkeys = spec.records, spec.keys
    valid = n - deleted.count(DELETED)
    keys = []
    for key_no in range(1, nkeys + 1):
        missing = sum(1 for j in missing_in.values() if key_no > nkeys - j)
        keys.append(
            {
                "key_no": key_no,
                "values_before": valid - missing + (spec.dangling or 0),
                "dangling": spec.dangling or 0,
                "values_after": valid - missing,
                "missing": missing,
                "largest_address": loads[key_no - 1].largest_address,
                "blocks": loads[key_no - 1].blocks,
                "levels": loads[key_no - 1].levels,
            }
        )
    fs_eof = n - (spec.eof_behind or 0)
    return {
        "procedure": "keyed",
        "spec": {k: v for k, v in asdict(spec).items() if k != "extra"},
        "data_file": data_rel,
        "key_file": key_rel,
        "damage": sorted(spec.damage),
        "expected": {
            "crashed": bool(spec.crashed),
            "record_length": spec.record_length,
            "sectors_per_block": spec.sectors_per_block,
            "fs_eof": fs_eof,
            "keyed_eof": n,
            "fs_eof_reset": fs_eof < n,
            "fs_eof_after": n,
            "data_size": DATA_HEADER_SIZE + n * ((spec.record_length or 0) + 1),
            "valid_records": valid,
            "deleted_records": n - valid,
            "key_eof": key_eof,
            "key_eof_reset": key_eof < true_eof,
            "key_eof_after": max(key_eof, largest + spec.sectors_per_block),
            "largest_block_address": largest,
            "keys": keys,
            "dangling_total": (spec.dangling or 0) * nkeys,
            "missing_records": len(missing_in),
            "missing_keys": sum(k["missing"] for k in keys),
            "reload_needed": bool(missing_in),
            "count_after_repair": keys[0]["values_after"],
            "after_reload": {"records": valid, "key_values": valid, "deleted_dropped": n - valid},
        },
    }
