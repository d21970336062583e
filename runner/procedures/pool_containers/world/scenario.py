"""What a correct recovery finds: the expected outcome written to scenario.json.

Computed from how the generator built the site (its totals and each damaged
element's `Expect`), never by running the fix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runner.procedures.pool_containers.world.categories import CATEGORIES, Expect

if TYPE_CHECKING:
    from runner.procedures.pool_containers.world.generator import Builder, Options


def scenario(b: Builder, opts: Options, per: int, expects: list[Expect]) -> dict[str, Any]:
    """The content of scenario.json: the counts a check and a force+fix run must
    report, and every damaged element's expected outcome."""
    examined = [e for e in expects if e.examined]
    fixed = [e for e in examined if e.outcome == "fix"]
    matches = {k: 0 for k in ("identical", "superset", "subset", "nonoptimised", "none")}
    for e in examined:
        for m in e.matches:
            matches[m] += 1
    corrupt_alt = sum(e.corrupt_alt for e in expects)
    fix = {
        "missing": b.totals["missing"],
        "elements_examined": len(examined),
        **{f"match_{k}": v for k, v in matches.items()},
        "versions_rebuildable": sum(e.rebuilt for e in examined),
        "versions_lost_accepted": sum(len(e.lost_accepted) for e in fixed),
        "versions_lost_refused": sum(len(e.lost_refused) for e in examined),
        "versions_held": sum(e.held for e in examined),
        "elements_fix": len(fixed),
        "elements_refused_window": sum(e.outcome == "refused_window" for e in examined),
        "elements_interactive": sum(e.outcome == "interactive" for e in examined),
        "alternates_of_examined": sum(e.alternates for e in examined),
        "corrupt_found": corrupt_alt,
        "elements_fixed": len(fixed),
        "containers_rebuilt": sum(m != "none" for e in fixed for m in e.matches),
        "containers_removed": sum(m == "none" for e in fixed for m in e.matches),
        "versions_rebuilt": sum(e.rebuilt for e in fixed),
        "versions_lost": sum(len(e.lost_accepted) for e in fixed),
        "alternates_moved": sum(e.alternates for e in fixed),
    }
    check = {
        "containers_checked": b.totals["containers"],
        "missing": b.totals["missing"],
        "elements_with_missing": len(examined),
        "unreferenced": b.totals["unreferenced"],
        "orphans": per,
        "corrupt": sum(e.corrupt_ref for e in expects) + corrupt_alt,
        "cleartext_copies": b.totals["cleartext"],
    }
    categories: dict[str, list[str]] = {c: [] for c in CATEGORIES if c != "orphan"}
    for e in expects:
        categories[e.category].append(e.path)
    return {
        "procedure": "pools",
        "seed": opts.seed,
        "elements": opts.elements,
        "now": opts.now.isoformat(),
        "window": opts.since().isoformat(),
        "params": {"since": opts.since().isoformat()},
        "pool_files": b.files,
        "expected": {"check": check, "fix": fix},
        "categories": categories,
        "damaged": {
            e.path: {
                "category": e.category,
                "outcome": e.outcome,
                "matches": e.matches,
                "rebuilt": e.rebuilt,
                "lost_accepted": e.lost_accepted,
                "lost_refused": e.lost_refused,
                "alternates": e.alternates,
            }
            for e in expects
        },
        "notes": {c: d for c, d in CATEGORIES.items()},
    }
