"""What the fix's reports are rendered from: the work file, streamed."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from runner.contract import StepContext
from runner.procedures.pool_containers.window import Window
from runner.procedures.pool_containers.worklist import Mode, describe, read_lines, verdict


def elements(ctx: StepContext, work: str) -> Iterator[dict[str, Any]]:
    """Every examined element's decision, with its one-line description."""
    with ctx.media.open(work) as handle:
        for line in read_lines(handle):
            line["summary"] = describe(line)
            line["verdict"] = verdict(line)
            yield line


def decisions(ctx: StepContext, work: str) -> Iterator[dict[str, Any]]:
    """Every examined element's decision as the work file holds it (the lost-version
    rows need no description)."""
    with ctx.media.open(work) as handle:
        yield from read_lines(handle)


#: the counts every fix reports, zero when no examined element added to them
FIX_COUNTS = (
    "match_identical",
    "match_superset",
    "match_subset",
    "match_nonoptimised",
    "match_none",
    "elements_examined",
    "elements_fix",
    "elements_refused_window",
    "elements_interactive",
    "elements_fixed",
    "containers_rebuilt",
    "containers_removed",
    "versions_rebuilt",
    "versions_rebuildable",
    "versions_lost",
    "versions_lost_accepted",
    "versions_lost_refused",
    "alternates_moved",
    "corrupt_found",
)


def fix_counts(summary: dict[str, int]) -> dict[str, int]:
    """The step's summary with every one of FIX_COUNTS present."""
    counts = {k: int(v) for k, v in summary.items()}
    for key in FIX_COUNTS:
        counts.setdefault(key, 0)
    return counts


def fix_context(
    ctx: StepContext, win: Window, mode: Mode, counts: dict[str, int]
) -> dict[str, Any]:
    s = fix_counts(counts)
    s.setdefault("alternates_of_examined", 0)
    return {
        "now": ctx.now.isoformat(),
        "mode": mode.label,
        "named": sorted(mode.named),
        "window": win.since.isoformat(),
        "window_text": win.text,
        "dry_run": ctx.dry_run,
        "s": s,
    }


def lost_rows(lines: Iterable[dict[str, Any]], win: Window) -> Iterator[list[Any]]:
    """One CSV row per version that could not be rebuilt."""
    for line in lines:
        for window_verdict, key in (("accepted", "lost_accepted"), ("refused", "lost_refused")):
            for vid, branch, number, created in line[key]:
                yield [
                    line["path"],
                    branch,
                    number,
                    vid,
                    created,
                    window_verdict,
                    "yes" if line["apply"] and window_verdict == "accepted" else "no",
                    line["outcome"],
                ]
