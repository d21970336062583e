"""The expected outcome of recovering a generated site, written to scenario.json.

Computed from the generator's own knowledge of the damage (the unreadable
ranges it broke), with its own queries rather than the actions' SQL, so tests
comparing the runner's results against it check two independent paths.
"""

from __future__ import annotations

import sqlite3
from typing import Any

#: Per-study expectations are listed only up to this many affected studies
#: (a benchmark world would make scenario.json huge otherwise).
PER_STUDY_LIMIT = 5000


def expected_outcome(
    db: sqlite3.Connection, damaged: str, ranges: list[tuple[int, int]]
) -> dict[str, Any]:
    db.execute("DROP TABLE IF EXISTS temp.hit")
    db.execute("CREATE TEMP TABLE hit (object_id INTEGER PRIMARY KEY, cached INT, copied INT)")
    for begin, end in ranges:
        db.execute(
            "INSERT INTO temp.hit SELECT object_id, 0, 0 FROM catalog.object_locations"
            " WHERE volume_ref = ? AND ordinal BETWEEN ? AND ?",
            (damaged, begin, end),
        )
    db.execute(
        "UPDATE temp.hit SET cached = object_id IN (SELECT object_id FROM catalog.cached_objects)"
    )
    db.execute(
        "UPDATE temp.hit SET copied = object_id IN (SELECT object_id FROM"
        " catalog.object_locations WHERE volume_ref <> ?)",
        (damaged,),
    )
    per_study = db.execute(
        "SELECT o.study_ref, count(*), sum(h.cached OR h.copied),"
        " (SELECT count(*) FROM catalog.objects o2 WHERE o2.study_ref = o.study_ref)"
        " FROM temp.hit h JOIN catalog.objects o USING (object_id)"
        " GROUP BY o.study_ref ORDER BY o.study_ref"
    )
    studies: dict[str, dict[str, Any]] = {}
    totals = {
        "studies": 0,
        "objects": 0,
        "study_objects": 0,
        "recoverable": 0,
        "fully": 0,
        "partially": 0,
        "unrecoverable_studies": 0,
        "studies_deleted": 0,
    }
    for study_ref, objects, recoverable, all_objects in per_study:
        status = (
            "fully recovered"
            if recoverable == objects
            else "partially recovered"
            if recoverable
            else "unrecoverable"
        )
        totals["studies"] += 1
        totals["objects"] += objects
        totals["study_objects"] += all_objects
        totals["recoverable"] += recoverable
        totals[
            {
                "fully recovered": "fully",
                "partially recovered": "partially",
                "unrecoverable": "unrecoverable_studies",
            }[status]
        ] += 1
        if recoverable == 0 and objects == all_objects:
            totals["studies_deleted"] += 1
        if len(studies) < PER_STUDY_LIMIT:
            studies[study_ref] = {
                "study_objects": all_objects,
                "objects": objects,
                "recoverable": recoverable,
                "unrecoverable": objects - recoverable,
                "status": status,
            }
    on_volume, locations, block_count, carrier = db.execute(
        "SELECT (SELECT count(DISTINCT o.study_ref) FROM catalog.object_locations l"
        "        JOIN catalog.objects o USING (object_id) WHERE l.volume_ref = v.volume_ref),"
        " (SELECT count(*) FROM catalog.object_locations l WHERE l.volume_ref = v.volume_ref),"
        " v.block_count, v.carrier_id FROM catalog.volumes v WHERE v.volume_ref = ?",
        (damaged,),
    ).fetchone()
    carriers = [
        {"carrier_id": c, "loaded": bool(loaded)}
        for c, loaded in db.execute(
            # copies of uncached hit objects, and of the uncached objects of hit
            # studies that are not on the damaged volume (the whole study is fetched)
            "SELECT DISTINCT v.carrier_id, k.loaded FROM"
            " (SELECT object_id FROM temp.hit WHERE cached = 0"
            "  UNION SELECT o.object_id FROM catalog.objects o"
            "  WHERE o.study_ref IN (SELECT o2.study_ref FROM temp.hit h2"
            "   JOIN catalog.objects o2 USING (object_id))"
            "  AND o.object_id NOT IN (SELECT object_id FROM catalog.object_locations"
            "   WHERE volume_ref = ?)"
            "  AND o.object_id NOT IN (SELECT object_id FROM catalog.cached_objects)) h"
            " JOIN catalog.object_locations l ON l.object_id = h.object_id AND l.volume_ref <> ?"
            "  AND l.state = 'A'"
            " JOIN catalog.volumes v ON v.volume_ref = l.volume_ref"
            " JOIN catalog.carriers k ON k.carrier_id = v.carrier_id"
            " ORDER BY v.carrier_id",
            (damaged, damaged),
        )
        if c != carrier
    ]
    open_volume = db.execute(
        "SELECT min(volume_ref) FROM catalog.volumes WHERE status = 'open'"
    ).fetchone()[0]
    db.execute("DROP TABLE temp.hit")
    unrecoverable = totals["objects"] - totals["recoverable"]
    return {
        "damaged_volume": damaged,
        "damaged_carrier": carrier,
        "block_count": block_count,
        "locations_on_volume": locations,
        "unreadable_ranges": [{"begin": b, "end": e} for b, e in ranges],
        "unreadable_blocks": sum(e - b + 1 for b, e in ranges),
        "open_volume": open_volume,
        "expected": {
            "studies_on_volume": on_volume,
            "studies_affected": totals["studies"],
            "studies_intact_on_volume": on_volume - totals["studies"],
            "objects_affected": totals["objects"],
            "objects_of_affected_studies": totals["study_objects"],
            "recoverable": totals["recoverable"],
            "unrecoverable": unrecoverable,
            "fully_recovered_studies": totals["fully"],
            "partially_recovered_studies": totals["partially"],
            "unrecoverable_studies": totals["unrecoverable_studies"],
            "studies_deleted_at_clean_up": totals["studies_deleted"],
            "carriers_with_copies": carriers,
            "volume_removed_after_clean_up": locations == totals["objects"],
        },
        "studies": studies,
        "studies_listed_in_full": totals["studies"] <= PER_STUDY_LIMIT,
    }
