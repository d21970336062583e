"""The fix algorithm for one element, as pure functions (no I/O): which rebind
rebuilds each missing container, and whether the guards let the fix go ahead.

For each missing container of the element:

1. Optimised rebind: among the element's alternates written by the element's
   own type manager (and with no corrupt version), take the best match:
   identical (same versions as expected), else superset (the one with fewest
   extra versions), else subset (the one with most versions); ties go to the
   first by (pool, path). Clone it and prune the versions the database does
   not expect. A subset's absent versions are missing: the note's algorithm
   does not complete an optimised rebind from other sources.
2. Non-optimised rebind, when no such alternate exists: each expected version
   from the first source holding an intact copy of it, in this order: the
   element's other alternates (other type managers, then same-type-manager
   alternates that matched neither way), then whole copies in cleartext pools.
3. Versions that no source holds are missing.

Then the guards, for the element as a whole: a missing version created before
the window refuses the element (left as is); in force mode, a branch whose
every present version above 0 would be lost refuses the element too (it needs
interactive handling).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from runner.procedures.pool_containers.catalog import parse_stamp
from runner.procedures.pool_containers.window import Window

VersionKey = tuple[str, int]

IDENTICAL, SUPERSET, SUBSET, NONOPTIMISED, NONE = (
    "identical",
    "superset",
    "subset",
    "nonoptimised",
    "none",
)
MATCH_KINDS = (IDENTICAL, SUPERSET, SUBSET, NONOPTIMISED, NONE)
FIX, REFUSED_WINDOW, INTERACTIVE = "fix", "refused_window", "interactive"


@dataclass(frozen=True)
class Version:
    id: int
    branch: str
    number: int
    created_at: str  # catalog stamp, UTC
    present: bool = True

    @property
    def key(self) -> VersionKey:
        return (self.branch, self.number)

    def label(self) -> str:
        return f"{self.branch}/{self.number}"


@dataclass(frozen=True)
class Candidate:
    """An unreferenced container of the element (or a cleartext whole copy)."""

    pool: str
    relpath: str
    kind: str  # source | cleartext
    type_manager: str
    keys: frozenset[VersionKey]
    corrupt: frozenset[VersionKey] = frozenset()

    @property
    def intact(self) -> frozenset[VersionKey]:
        return self.keys - self.corrupt


@dataclass(frozen=True)
class Missing:
    container_id: int
    pool: str
    relpath: str
    expected: tuple[Version, ...]


@dataclass
class ContainerDecision:
    missing: Missing
    match: str
    source: Candidate | None  # the chosen alternate (optimised rebind)
    sources: dict[VersionKey, Candidate]  # where each rebuilt version comes from
    rebuilt: list[Version]
    lost: list[Version]


@dataclass
class ElementDecision:
    containers: list[ContainerDecision]
    lost_accepted: list[Version] = field(default_factory=list)
    lost_refused: list[Version] = field(default_factory=list)
    guard_branches: list[str] = field(default_factory=list)
    outcome: str = FIX


def choose_match(
    expected: frozenset[VersionKey], type_manager: str, alternates: Sequence[Candidate]
) -> tuple[str, Candidate] | None:
    """The best same-type-manager alternate: identical, then superset, then subset."""
    usable = sorted(
        (a for a in alternates if a.type_manager == type_manager and a.kind == "source"),
        key=lambda a: (a.pool, a.relpath),
    )
    usable = [a for a in usable if not a.corrupt]
    identical = [a for a in usable if a.keys == expected]
    if identical:
        return IDENTICAL, identical[0]
    supersets = [a for a in usable if a.keys > expected]
    if supersets:
        return SUPERSET, min(supersets, key=lambda a: len(a.keys))
    subsets = [a for a in usable if a.keys and a.keys < expected]
    if subsets:
        return SUBSET, max(subsets, key=lambda a: len(a.keys))
    return None


def decide_container(
    missing: Missing,
    type_manager: str,
    alternates: Sequence[Candidate],
    cleartext: Sequence[Candidate],
) -> ContainerDecision:
    expected = frozenset(v.key for v in missing.expected)
    best = choose_match(expected, type_manager, alternates)
    if best is not None:
        kind, source = best
        rebuilt = [v for v in missing.expected if v.key in source.keys]
        lost = [v for v in missing.expected if v.key not in source.keys]
        return ContainerDecision(
            missing, kind, source, {v.key: source for v in rebuilt}, rebuilt, lost
        )
    ordered = sorted(
        (a for a in alternates if a.kind == "source"),
        key=lambda a: (a.type_manager == type_manager, a.pool, a.relpath),
    ) + sorted(cleartext, key=lambda a: (a.pool, a.relpath))
    sources: dict[VersionKey, Candidate] = {}
    for version in missing.expected:
        for candidate in ordered:
            if version.key in candidate.intact:
                sources[version.key] = candidate
                break
    rebuilt = [v for v in missing.expected if v.key in sources]
    lost = [v for v in missing.expected if v.key not in sources]
    return ContainerDecision(
        missing, NONOPTIMISED if rebuilt else NONE, None, sources, rebuilt, lost
    )


def decide_element(
    type_manager: str,
    missing: Sequence[Missing],
    versions: Sequence[Version],
    alternates: Sequence[Candidate],
    cleartext: Sequence[Candidate],
    window: Window,
    *,
    force: bool,
) -> ElementDecision:
    containers = [decide_container(m, type_manager, alternates, cleartext) for m in missing]
    decision = ElementDecision(containers)
    lost = [v for c in containers for v in c.lost]
    for version in lost:
        if window.accepts(parse_stamp(version.created_at)):
            decision.lost_accepted.append(version)
        else:
            decision.lost_refused.append(version)
    decision.guard_branches = branches_emptied(versions, lost)
    if decision.lost_refused:
        decision.outcome = REFUSED_WINDOW
    elif force and decision.guard_branches:
        decision.outcome = INTERACTIVE
    return decision


def branches_emptied(versions: Sequence[Version], lost: Sequence[Version]) -> list[str]:
    """Branches that have present versions above 0 and would lose every one of them."""
    gone = {v.id for v in lost}
    above: dict[str, list[int]] = {}
    for version in versions:
        if version.number > 0 and version.present:
            above.setdefault(version.branch, []).append(version.id)
    return sorted(b for b, ids in above.items() if all(i in gone for i in ids))
