"""`pools.fix`: decide every element (the work list), rebuild, then report."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from runner.contract import Check, Output, StepContext, declare_outputs
from runner.errors import ConfirmationRequired, RecoverError, SafetyRefusal, StepFailed
from runner.procedures.pool_containers import pool_scan, window
from runner.procedures.pool_containers.actions.base import PoolsAction, scan_counts
from runner.procedures.pool_containers.fix_report import (
    decisions,
    elements,
    fix_context,
    fix_counts,
    lost_rows,
)
from runner.procedures.pool_containers.rebuild import replay
from runner.procedures.pool_containers.worklist import Mode, Summary, write_worklist
from runner.site import safe_relpath

FIX_REPORT = "reports/pools-fix.txt"
FIX_CSV = "reports/pools-fix-versions.csv"
BATCH = 500


class FixPools(PoolsAction):
    name = "pools.fix"
    summary = (
        "rebuild missing containers from alternates and cleartext; with force+fix, accept "
        "the loss the window allows"
    )
    destructive = True
    outputs = declare_outputs(
        mode=Output("string", "the fix mode"),
        window_since=Output("string", "start of the fix window (ISO time)"),
        changed=Output("boolean", "whether any element was fixed"),
        reports=Output("list", "reports written"),
        containers_checked=Output("integer", "containers checked"),
        missing=Output("integer", "containers missing"),
        elements_with_missing=Output("integer", "elements with a missing container"),
        unreferenced=Output("integer", "containers no element refers to"),
        orphans=Output("integer", "unreferenced containers of unknown elements"),
        cleartext_copies=Output("integer", "cleartext copies found"),
        corrupt_found=Output("integer", "containers failing their digest"),
        elements_examined=Output("integer", "elements examined"),
        elements_fix=Output("integer", "elements to fix"),
        elements_fixed=Output("integer", "elements fixed"),
        elements_interactive=Output("integer", "elements left for an interactive decision"),
        elements_refused_window=Output("integer", "elements outside the window"),
        alternates_moved=Output("integer", "alternates moved"),
        alternates_of_examined=Output("integer", "alternates of the examined elements"),
        containers_rebuilt=Output("integer", "containers rebuilt"),
        containers_removed=Output("integer", "containers removed"),
        match_identical=Output("integer", "rebuilt identical"),
        match_superset=Output("integer", "rebuilt as a superset"),
        match_subset=Output("integer", "rebuilt as a subset"),
        match_nonoptimised=Output("integer", "rebuilt non-optimised"),
        match_none=Output("integer", "no match"),
        versions_held=Output("integer", "versions held"),
        versions_lost=Output("integer", "versions lost"),
        versions_lost_accepted=Output("integer", "versions lost, accepted"),
        versions_lost_refused=Output("integer", "versions lost, refused"),
        versions_rebuildable=Output("integer", "versions rebuildable"),
        versions_rebuilt=Output("integer", "versions rebuilt"),
    )
    loss_units = ("versions",)

    def preflight(self, ctx: StepContext) -> Iterator[Check]:
        """The shared inputs, the window (and its confirmation when it is wide) and
        the named elements: no step changes them, so a run that would be refused
        here is refused before the check step writes its report."""
        shared = list(super().preflight(ctx))
        yield from shared
        if not all(c.ok for c in shared):
            return
        yield from self.own_checks(ctx)
        try:
            win = window.parse(self.args.get("allow_missing_data_since", window.DEFAULT), ctx.now)
        except RecoverError:
            return  # reported by own_checks
        if win.wide(ctx.now) and not ctx.confirmed(window.CONFIRM_KEY):
            yield Check(
                "a wide allowed-data-loss window is confirmed",
                False,
                f"the window starts {win.since.isoformat()}, more than a week before now",
                fix=f"if that much loss is acceptable, add {window.CONFIRM_KEY} to the "
                f"playbook's safety.confirm or pass --confirm {window.CONFIRM_KEY}",
                refusal=True,
            )

    def own_checks(self, ctx: StepContext) -> Iterator[Check]:
        try:
            window.parse(self.args.get("allow_missing_data_since", window.DEFAULT), ctx.now)
            yield Check("allowed-data-loss window is valid", True)
        except RecoverError as exc:
            yield Check("allowed-data-loss window is valid", False, exc.message, exc.fix)
        named = self.args.get("elements", [])
        if named:
            known = {
                r[0]
                for r in ctx.db.execute(
                    "SELECT path FROM elements WHERE path IN (SELECT value FROM json_each(?))",
                    (json.dumps(named),),
                )
            }
            unknown = [p for p in named if p not in known]
            yield Check(
                "named elements exist",
                not unknown,
                "unknown: " + ", ".join(unknown[:10]) if unknown else "",
                fix="name elements by their path in the catalog's elements table",
            )

    def run(self, ctx: StepContext) -> None:
        win = window.parse(self.args.get("allow_missing_data_since", window.DEFAULT), ctx.now)
        if win.wide(ctx.now) and not ctx.confirmed(window.CONFIRM_KEY):
            raise ConfirmationRequired(
                f"the allowed-data-loss window starts {win.since.isoformat()}, more than a week "
                "before the run's clock; nothing was changed",
                fix=f"if that much loss is acceptable, add {window.CONFIRM_KEY} to the playbook's "
                f"safety.confirm or pass --confirm {window.CONFIRM_KEY}",
            )
        mode = Mode(
            bool(self.args.get("force", False)),
            bool(self.args.get("fix", False)),
            frozenset(self.args.get("elements", [])),
        )
        report = self.args.get("report", FIX_REPORT)
        work = _work_path(report, ctx.step_id)
        state: dict[str, Any] = dict(ctx.state)
        if not state.get("phase"):
            state = self._decide(ctx, win, mode, work)
        if state["phase"] == "apply":
            batch = int(self.args.get("batch_size", BATCH))
            replay(ctx, work, state, batch, ctx.checkpoint)
            state = {**state, "phase": "report"}
            ctx.checkpoint(state)
        if state["phase"] == "report":
            state = self._reports(ctx, win, mode, work, state)
        ctx.media.remove(work)
        self._finish(ctx, win, mode, state)

    def _decide(
        self, ctx: StepContext, win: window.Window, mode: Mode, work: str
    ) -> dict[str, Any]:
        pools = pool_scan.load_pools(ctx.db)
        selected = self.selected(pools)
        # Unreferenced containers and cleartext copies are the candidate sources:
        # their digests are checked while they are read anyway.
        stats = pool_scan.scan(ctx, pools, verify=lambda _p, referenced: not referenced)
        summary = Summary(scan_counts(ctx.db, selected))
        summary.counts["cleartext_copies"] = stats.cleartext
        examples = write_worklist(ctx, pools, selected, win, mode, work, summary)
        pool_scan.drop_temp(ctx.db)
        state = {
            "phase": "apply",
            "offset": 0,
            "lines": summary.counts.get("elements_examined", 0),
            "summary": summary.counts,
        }
        ctx.lost("versions", summary.counts.get("versions_lost", 0), examples)
        try:
            ctx.checkpoint(state)  # the loss budget gate, before anything changes
        except SafetyRefusal:
            ctx.media.remove(work)
            raise
        return state

    def _reports(
        self, ctx: StepContext, win: window.Window, mode: Mode, work: str, state: dict[str, Any]
    ) -> dict[str, Any]:
        """Render both reports. A run interrupted while rendering rewrites its own
        files on resume (the engine keeps report names claimed until the step commits)."""
        report = self.args.get("report", FIX_REPORT)
        versions_csv = self.args.get("versions_csv", FIX_CSV)
        if safe_relpath(report) == safe_relpath(versions_csv):
            raise StepFailed("report and versions_csv name the same file")
        common = fix_context(ctx, win, mode, state["summary"])
        lines = ctx.progress(elements(ctx, work), state.get("lines"), "report lines")
        text = ctx.report(
            "pool_containers/fix.txt.j2",
            report,
            {**common, "elements": lines, "lost": lost_rows(decisions(ctx, work), win)},
        )
        table = ctx.report(
            "pool_containers/fix-versions.csv.j2",
            versions_csv,
            {"rows": lost_rows(decisions(ctx, work), win)},
        )
        state = {**state, "phase": "done", "reports": [text, table]}
        ctx.checkpoint(state)
        return state

    def _finish(
        self, ctx: StepContext, win: window.Window, mode: Mode, state: dict[str, Any]
    ) -> None:
        counts = fix_counts(state["summary"])
        ctx.output(
            **counts,
            mode=mode.label,
            window_since=win.since.isoformat(),
            changed=bool(counts["elements_fixed"]),
            reports=state.get("reports", []),
        )
        ctx.note(
            f"{mode.label}, window since {win.since.isoformat()}: "
            f"{counts['missing']:,} missing containers in {counts['elements_examined']:,} "
            f"elements; rebuilt identical {counts['match_identical']:,}, superset "
            f"{counts['match_superset']:,}, subset {counts['match_subset']:,}, non-optimised "
            f"{counts['match_nonoptimised']:,}; versions lost: accepted "
            f"{counts['versions_lost_accepted']:,}, refused {counts['versions_lost_refused']:,}; "
            f"{counts['elements_fixed']:,} elements fixed, {counts['alternates_moved']:,} "
            "alternates moved to lost+found"
        )
        if not mode.fix or (not mode.force and not mode.named):
            ctx.note(
                "report only: nothing was changed (changes need force and fix, or fix with "
                "the elements named)"
            )
        if counts["elements_refused_window"]:
            ctx.warn(
                f"{counts['elements_refused_window']:,} element(s) left as is: they would lose "
                f"version data created before {win.since.isoformat()}; re-run with a wider "
                "window or fix them one by one (see the report)"
            )
        if counts["elements_interactive"] and mode.force:
            ctx.warn(
                f"{counts['elements_interactive']:,} element(s) refused in force mode: a branch "
                "would lose all its versions above 0; fix each interactively (fix without "
                "force, naming it in `elements`)"
            )


def _work_path(report: str, step_id: str) -> str:
    parent, _, _name = report.rpartition("/")
    name = f".pools-fix-{step_id}.work.jsonl"
    return f"{parent}/{name}" if parent else name
