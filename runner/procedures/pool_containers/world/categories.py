"""How the world generator builds each kind of element, and what it expects of the fix.

Each maker builds one element (catalog rows and pool files) and returns an
`Expect`: the outcome a force+fix run under the scenario's window must have,
derived from the construction itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from runner.procedures.pool_containers.media import TYPE_MANAGERS

if TYPE_CHECKING:
    from runner.procedures.pool_containers.world.generator import Builder, V

MULTI = ("delta", "compressed")

#: category -> what it exercises
CATEGORIES: dict[str, str] = {
    "identical": "container missing; an identical alternate in another pool (unrecorded move)",
    "identical_wc": "whole-copy element: one version's container missing, identical alternate",
    "superset": "container missing; the pool is newer: the alternate holds extra versions",
    "subset_recent": "container missing; the database is newer: newest versions, created "
    "inside the window, are in no alternate",
    "subset_old": "like subset_recent, but the versions no alternate holds are older than "
    "the window: refused, left as is",
    "prefer_identical": "identical, superset and subset alternates: identical wins",
    "prefer_superset": "superset and subset alternates: superset wins",
    "other_tm": "delta element, only a compressed alternate (type manager changed): "
    "non-optimised rebind",
    "other_tm_wc": "compressed element, only whole-copy alternates, one per version",
    "cleartext": "no alternate; every version has a whole copy in the cleartext pool",
    "mixed": "older versions from another type manager's alternate, newest from cleartext",
    "lost_recent": "whole-copy element: the newest version's container is gone everywhere, "
    "created inside the window: loss accepted",
    "lost_old": "whole-copy element: a version older than the window is gone everywhere: "
    "refused, left as is",
    "branch_guard": "whole-copy element: every version above 0 of /main/dev is gone "
    "(inside the window): refused in force mode, listed for interactive handling",
    "corrupt_ref": "healthy element whose referenced container fails a digest",
    "corrupt_alt": "container missing; the identical alternate is corrupt, an intact "
    "subset wins (newest versions lost, inside the window)",
    "orphan": "an unreferenced container of an element the database does not know",
}


@dataclass
class Expect:
    """What a force+fix run under the window does with one element."""

    category: str
    path: str = ""
    outcome: str = "healthy"  # fix | refused_window | interactive | healthy
    matches: list[str] = field(default_factory=list)  # per missing container
    rebuilt: int = 0  # versions the decision rebuilds
    lost_accepted: list[str] = field(default_factory=list)
    lost_refused: list[str] = field(default_factory=list)
    held: int = 0  # unrebuildable, inside the window, but the element is left as is
    alternates: int = 0
    corrupt_ref: int = 0
    corrupt_alt: int = 0

    @property
    def examined(self) -> bool:
        return bool(self.matches)


def labels(versions: list[V]) -> list[str]:
    return [f"{v.branch}/{v.number}" for v in versions]


def healthy(b: Builder, i: int) -> Expect:
    tm = b.rng.choices(TYPE_MANAGERS, weights=(3, 5, 2))[0]
    dev = b.rng.randint(0, 2) if b.rng.random() < 0.2 else None
    oid, versions = b.new_element(i, tm, b.rng.randint(1, 5), dev)
    if tm == "whole_copy":
        for v in versions:
            b.container(i, oid, tm, [v])
    else:
        b.container(i, oid, tm, versions)
    for v in versions:
        if v.number > 0 and b.rng.random() < b.opts.cleartext:
            b.cleartext(oid, v)
    return Expect("healthy")


def identical(b: Builder, i: int) -> Expect:
    tm = b.rng.choice(MULTI)
    oid, versions = b.new_element(i, tm, b.rng.randint(2, 5))
    b.container(i, oid, tm, versions, present=False)
    b.alternate(oid, tm, versions)
    return Expect(
        "identical", outcome="fix", matches=["identical"], rebuilt=len(versions), alternates=1
    )


def identical_wc(b: Builder, i: int) -> Expect:
    oid, versions = b.new_element(i, "whole_copy", b.rng.randint(2, 4))
    gone = b.rng.choice(versions[1:])
    for v in versions:
        b.container(i, oid, "whole_copy", [v], present=v is not gone)
    b.alternate(oid, "whole_copy", [gone])
    return Expect("identical_wc", outcome="fix", matches=["identical"], rebuilt=1, alternates=1)


def superset(b: Builder, i: int) -> Expect:
    tm = b.rng.choice(MULTI)
    oid, versions = b.new_element(i, tm, b.rng.randint(2, 5))
    b.container(i, oid, tm, versions, present=False)
    b.alternate(oid, tm, versions + b.extra(oid, versions, b.rng.randint(1, 2)))
    return Expect(
        "superset", outcome="fix", matches=["superset"], rebuilt=len(versions), alternates=1
    )


def subset_recent(b: Builder, i: int) -> Expect:
    tm = b.rng.choice(MULTI)
    lost = b.rng.randint(1, 2)
    oid, versions = b.new_element(i, tm, b.rng.randint(3, 5), shape=f"recent:{lost}")
    b.container(i, oid, tm, versions, present=False)
    b.alternate(oid, tm, versions[:-lost])
    return Expect(
        "subset_recent",
        outcome="fix",
        matches=["subset"],
        rebuilt=len(versions) - lost,
        lost_accepted=labels(versions[-lost:]),
        alternates=1,
    )


def subset_old(b: Builder, i: int) -> Expect:
    tm = b.rng.choice(MULTI)
    lost = b.rng.randint(1, 2)
    oid, versions = b.new_element(i, tm, b.rng.randint(3, 5), shape="old")
    b.container(i, oid, tm, versions, present=False)
    b.alternate(oid, tm, versions[:-lost])
    return Expect(
        "subset_old",
        outcome="refused_window",
        matches=["subset"],
        rebuilt=len(versions) - lost,
        lost_refused=labels(versions[-lost:]),
        alternates=1,
    )


def prefer_identical(b: Builder, i: int) -> Expect:
    tm = b.rng.choice(MULTI)
    oid, versions = b.new_element(i, tm, b.rng.randint(3, 5))
    b.container(i, oid, tm, versions, present=False)
    b.alternate(oid, tm, versions[:-1])
    b.alternate(oid, tm, versions + b.extra(oid, versions, 1))
    b.alternate(oid, tm, versions)
    return Expect(
        "prefer_identical",
        outcome="fix",
        matches=["identical"],
        rebuilt=len(versions),
        alternates=3,
    )


def prefer_superset(b: Builder, i: int) -> Expect:
    tm = b.rng.choice(MULTI)
    oid, versions = b.new_element(i, tm, b.rng.randint(3, 5))
    b.container(i, oid, tm, versions, present=False)
    b.alternate(oid, tm, versions[:-1])
    b.alternate(oid, tm, versions + b.extra(oid, versions, 2))
    return Expect(
        "prefer_superset", outcome="fix", matches=["superset"], rebuilt=len(versions), alternates=2
    )


def other_tm(b: Builder, i: int) -> Expect:
    oid, versions = b.new_element(i, "delta", b.rng.randint(2, 5))
    b.container(i, oid, "delta", versions, present=False)
    b.alternate(oid, "compressed", versions)
    return Expect(
        "other_tm", outcome="fix", matches=["nonoptimised"], rebuilt=len(versions), alternates=1
    )


def other_tm_wc(b: Builder, i: int) -> Expect:
    oid, versions = b.new_element(i, "compressed", b.rng.randint(1, 3))
    b.container(i, oid, "compressed", versions, present=False)
    for v in versions:
        b.alternate(oid, "whole_copy", [v])
    return Expect(
        "other_tm_wc",
        outcome="fix",
        matches=["nonoptimised"],
        rebuilt=len(versions),
        alternates=len(versions),
    )


def cleartext(b: Builder, i: int) -> Expect:
    tm = b.rng.choice(MULTI)
    oid, versions = b.new_element(i, tm, b.rng.randint(1, 4))
    b.container(i, oid, tm, versions, present=False)
    for v in versions:
        b.cleartext(oid, v)
    return Expect("cleartext", outcome="fix", matches=["nonoptimised"], rebuilt=len(versions))


def mixed(b: Builder, i: int) -> Expect:
    oid, versions = b.new_element(i, "delta", b.rng.randint(3, 5))
    b.container(i, oid, "delta", versions, present=False)
    b.alternate(oid, "compressed", versions[:-1])
    b.cleartext(oid, versions[-1])
    return Expect(
        "mixed", outcome="fix", matches=["nonoptimised"], rebuilt=len(versions), alternates=1
    )


def lost_recent(b: Builder, i: int) -> Expect:
    oid, versions = b.new_element(i, "whole_copy", b.rng.randint(2, 4), shape="recent:1")
    for v in versions:
        b.container(i, oid, "whole_copy", [v], present=v is not versions[-1])
    return Expect(
        "lost_recent", outcome="fix", matches=["none"], lost_accepted=labels(versions[-1:])
    )


def lost_old(b: Builder, i: int) -> Expect:
    oid, versions = b.new_element(i, "whole_copy", b.rng.randint(2, 4), shape="old")
    for v in versions:
        b.container(i, oid, "whole_copy", [v], present=v is not versions[-1])
    return Expect(
        "lost_old", outcome="refused_window", matches=["none"], lost_refused=labels(versions[-1:])
    )


def branch_guard(b: Builder, i: int) -> Expect:
    oid, versions = b.new_element(i, "whole_copy", b.rng.randint(1, 3), dev=2, shape="recent:2")
    gone = versions[-2:]  # /main/dev/1 and /main/dev/2, created inside the window
    for v in versions:
        b.container(i, oid, "whole_copy", [v], present=v not in gone)
    return Expect("branch_guard", outcome="interactive", matches=["none", "none"], held=2)


def corrupt_ref(b: Builder, i: int) -> Expect:
    tm = b.rng.choice(MULTI)
    oid, versions = b.new_element(i, tm, b.rng.randint(1, 4))
    where = b.container(i, oid, tm, versions)
    b.corrupt(b.root / "pools" / where)
    return Expect("corrupt_ref", corrupt_ref=1)


def corrupt_alt(b: Builder, i: int) -> Expect:
    tm = b.rng.choice(MULTI)
    oid, versions = b.new_element(i, tm, b.rng.randint(3, 5), shape="recent:1")
    b.container(i, oid, tm, versions, present=False)
    b.corrupt(b.alternate(oid, tm, versions))
    b.alternate(oid, tm, versions[:-1])
    return Expect(
        "corrupt_alt",
        outcome="fix",
        matches=["subset"],
        rebuilt=len(versions) - 1,
        lost_accepted=labels(versions[-1:]),
        alternates=2,
        corrupt_alt=1,
    )


MAKERS: dict[str, Callable[[Builder, int], Expect]] = {
    "identical": identical,
    "identical_wc": identical_wc,
    "superset": superset,
    "subset_recent": subset_recent,
    "subset_old": subset_old,
    "prefer_identical": prefer_identical,
    "prefer_superset": prefer_superset,
    "other_tm": other_tm,
    "other_tm_wc": other_tm_wc,
    "cleartext": cleartext,
    "mixed": mixed,
    "lost_recent": lost_recent,
    "lost_old": lost_old,
    "branch_guard": branch_guard,
    "corrupt_ref": corrupt_ref,
    "corrupt_alt": corrupt_alt,
}
