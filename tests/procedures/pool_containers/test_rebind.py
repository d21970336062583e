"""The fix algorithm on one element: each preference rule and each guard."""

from __future__ import annotations

from datetime import UTC, datetime

from runner.procedures.pool_containers.rebind import (
    FIX,
    INTERACTIVE,
    REFUSED_WINDOW,
    Candidate,
    Missing,
    Version,
    branches_emptied,
    decide_container,
    decide_element,
)
from runner.procedures.pool_containers.window import Window

NOW = datetime(2026, 1, 15, 12, tzinfo=UTC)
WINDOW = Window(datetime(2026, 1, 14, tzinfo=UTC), "2026-01-14")
OLD, RECENT = "2026-01-10T08:00:00Z", "2026-01-14T08:00:00Z"


def versions(n: int, branch: str = "/main", created: str = OLD, start: int = 1) -> list[Version]:
    return [Version(start + i, branch, i, created) for i in range(n)]


def alt(
    keys: list[Version] | list[tuple[str, int]],
    tm: str = "delta",
    name: str = "a",
    kind: str = "source",
    corrupt: frozenset[tuple[str, int]] = frozenset(),
) -> Candidate:
    ks = frozenset(k.key if isinstance(k, Version) else k for k in keys)
    return Candidate("sdft", name, kind, tm, ks, corrupt)


def missing(vs: list[Version]) -> Missing:
    return Missing(1, "sdft", "x.dlt", tuple(vs))


V5 = versions(5)
EXTRA = [("/main", 5), ("/main", 6)]


def test_identical_beats_superset_and_subset() -> None:
    cands = [
        alt(V5[:3], name="sub"),
        alt([*(v.key for v in V5), *EXTRA], name="super"),
        alt(V5, name="same"),
    ]
    d = decide_container(missing(V5), "delta", cands, [])
    assert (d.match, d.source and d.source.relpath) == ("identical", "same")
    assert d.rebuilt == V5 and d.lost == []


def test_superset_beats_subset_and_the_smallest_superset_wins() -> None:
    cands = [
        alt(V5[:4], name="sub"),
        alt([*(v.key for v in V5), *EXTRA], name="big"),
        alt([*(v.key for v in V5), EXTRA[0]], name="small"),
    ]
    d = decide_container(missing(V5), "delta", cands, [])
    assert (d.match, d.source and d.source.relpath) == ("superset", "small")
    assert d.rebuilt == V5 and d.lost == []  # the extra versions are pruned


def test_subset_is_the_largest_and_its_gaps_are_missing_even_with_cleartext() -> None:
    """The note's optimised rebind is clone-and-prune only: no gap filling."""
    cands = [alt(V5[:2], name="small"), alt(V5[:4], name="large")]
    cleartext = [alt([V5[4]], tm="whole_copy", name="ct", kind="cleartext")]
    d = decide_container(missing(V5), "delta", cands, cleartext)
    assert (d.match, d.source and d.source.relpath) == ("subset", "large")
    assert d.lost == [V5[4]]


def test_only_the_elements_own_type_manager_is_optimised() -> None:
    d = decide_container(missing(V5), "delta", [alt(V5, tm="compressed")], [])
    assert d.match == "nonoptimised" and d.source is None
    assert d.rebuilt == V5 and {c.type_manager for c in d.sources.values()} == {"compressed"}


def test_corrupt_alternate_is_not_cloned() -> None:
    bad = alt(V5, name="bad", corrupt=frozenset({V5[2].key}))
    d = decide_container(missing(V5), "delta", [bad, alt(V5[:3], name="sub")], [])
    assert (d.match, d.source and d.source.relpath) == ("subset", "sub")


def test_non_optimised_takes_each_version_from_the_first_intact_source() -> None:
    other = alt(V5[:3], tm="compressed", name="other", corrupt=frozenset({V5[1].key}))
    # same type manager, but neither a subset nor a superset: not an optimised match
    partial_same = alt([*(v.key for v in V5[1:4]), ("/main", 9)], name="overlap")
    cleartext = [alt([v], tm="whole_copy", name=f"ct{v.number}", kind="cleartext") for v in V5]
    d = decide_container(missing(V5), "delta", [partial_same, other], cleartext)
    assert d.match == "nonoptimised"
    by = {k[1]: c.relpath for k, c in d.sources.items()}
    # other type managers first, then same-tm alternates that matched neither way, then cleartext
    assert by == {0: "other", 1: "overlap", 2: "other", 3: "overlap", 4: "ct4"}
    assert d.lost == []


def test_nothing_to_rebuild_from() -> None:
    d = decide_container(missing(V5), "delta", [], [])
    assert d.match == "none" and d.lost == V5 and d.rebuilt == []


def _element(lost_created: str, *, force: bool, main: int = 4, dev: list[Version] | None = None):  # type: ignore[no-untyped-def]
    history = [Version(i + 1, "/main", i, OLD) for i in range(main)]
    history[-1] = Version(main, "/main", main - 1, lost_created)
    all_versions = history + (dev or [])
    gone = [history[-1]]
    return decide_element(
        "whole_copy",
        [Missing(9, "sdft", "x.wc", tuple(gone))],
        all_versions,
        [],
        [],
        WINDOW,
        force=force,
    )


def test_window_accepts_loss_created_inside_it() -> None:
    d = _element(RECENT, force=True)
    assert d.outcome == FIX and [v.number for v in d.lost_accepted] == [3]


def test_window_start_is_inclusive() -> None:
    assert _element("2026-01-14T00:00:00Z", force=True).outcome == FIX
    assert _element("2026-01-13T23:59:59Z", force=True).outcome == REFUSED_WINDOW


def test_loss_older_than_the_window_refuses_the_element() -> None:
    d = _element(OLD, force=True)
    assert d.outcome == REFUSED_WINDOW and d.lost_refused and not d.lost_accepted


def test_force_never_empties_a_branch_above_zero() -> None:
    d = _element(RECENT, force=True, main=2)  # /main/0 and /main/1; /main/1 is lost
    assert d.outcome == INTERACTIVE and d.guard_branches == ["/main"]


def test_without_force_the_branch_guard_is_lifted_by_agreement() -> None:
    assert _element(RECENT, force=False, main=2).outcome == FIX


def test_window_refusal_comes_before_the_branch_guard() -> None:
    assert _element(OLD, force=True, main=2).outcome == REFUSED_WINDOW


def test_branch_guard_counts_only_present_versions_above_zero() -> None:
    main = [
        Version(1, "/main", 0, OLD),
        Version(2, "/main", 1, OLD, present=False),
        Version(3, "/main", 2, OLD),
    ]
    assert branches_emptied(main, [main[2]]) == ["/main"]  # /main/1's data is already gone
    assert branches_emptied(main, [main[0]]) == []  # losing /main/0 alone empties nothing
    dev = [Version(4, "/main/dev", 0, OLD)]
    assert branches_emptied(main + dev, [main[2], dev[0]]) == ["/main"]  # dev has nothing above 0
