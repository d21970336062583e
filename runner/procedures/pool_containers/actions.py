"""`pools.check` and `pools.fix`: the playbook actions of the storage-pool procedure."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any

from runner.contract import Action, Check, StepContext, tables_check
from runner.errors import ConfirmationRequired, RecoverError, SafetyRefusal, StepFailed
from runner.procedures.pool_containers import catalog, scan, window
from runner.procedures.pool_containers.analyse import Mode, Summary, analyse
from runner.procedures.pool_containers.apply import replay
from runner.procedures.pool_containers.reporting import (
    decisions,
    elements,
    fix_context,
    lost_rows,
)
from runner.procedures.pool_containers.scan import Pool
from runner.site import Site, safe_relpath

CHECK_REPORT = "reports/pools-check.txt"
FIX_REPORT = "reports/pools-fix.txt"
FIX_CSV = "reports/pools-fix-versions.csv"
BATCH = 500


class _PoolAction(Action):
    def databases(self, site: Site) -> dict[str, str]:
        return {"catalog": site.location("catalog", "catalog.sqlite")}

    def site_checks(self, ctx: StepContext) -> Iterator[Check]:
        """Preconditions shared by check and fix (all reported at once by plan)."""
        tables = tables_check(
            ctx.db,
            catalog.TABLES,
            "catalog has the pool tables",
            fix="point site.catalog at the repository database (see docs/pool_containers.md)",
        )
        yield tables
        if not tables.ok:
            return
        bad = catalog.bad_pool_paths(ctx.db)
        yield Check(
            "pool paths stay inside the site",
            not bad,
            "; ".join(bad),
            fix="correct the pools table: each path is a directory relative to the site",
        )
        if bad:
            return
        pools = catalog.pools(ctx.db)
        absent = [f"{n} ({p})" for n, p, _k in pools if not ctx.media.exists(p)]
        yield Check(
            "pool directories exist",
            not absent,
            "missing: " + ", ".join(absent) if absent else "",
            fix="restore the pool directories from backup, or correct the pools table",
        )
        sources = {n for n, _p, k in pools if k == "source"}
        unknown = [p for p in self.args.get("pools", []) if p not in sources]
        yield Check(
            "named pools are source pools of the catalog",
            not unknown,
            "unknown: " + ", ".join(unknown) if unknown else "",
            fix="name pools from the catalog's pools table (kind 'source')",
        )

    def selected(self, pools: list[Pool]) -> list[str]:
        names = self.args.get("pools") or [p.name for p in pools if p.kind == "source"]
        return sorted(names)


class CheckPools(_PoolAction):
    name = "pools.check"
    summary = (
        "check the storage pools: missing and unreferenced containers, corrupt digests (read only)"
    )

    def check(self, ctx: StepContext) -> Iterable[Check]:
        return list(self.site_checks(ctx))

    def run(self, ctx: StepContext) -> None:
        pools = scan.load_pools(ctx.db)
        selected = self.selected(pools)
        verify = bool(self.args.get("verify_digests", True))
        stats = scan.scan(
            ctx,
            pools,
            verify=lambda p, _ref: verify and (p.kind == "cleartext" or p.name in selected),
        )
        counts = scan_counts(ctx.db, selected)
        counts["corrupt"] = stats.corrupt
        counts["digests_checked"] = stats.checked
        counts["cleartext_copies"] = stats.cleartext
        path = ctx.report(
            "pool_containers/check.txt.j2",
            self.args.get("report", CHECK_REPORT),
            {
                "now": ctx.now.isoformat(),
                "pools": pools,
                "selected": selected,
                "verify": verify,
                "s": counts,
                "rows": check_rows(ctx.db, selected),
            },
        )
        scan.drop_temp(ctx.db)
        ctx.output(**counts, report=path)
        ctx.note(
            f"{counts['containers_checked']:,} containers checked: {counts['missing']:,} missing "
            f"(in {counts['elements_with_missing']:,} elements), {counts['unreferenced']:,} "
            f"unreferenced ({counts['orphans']:,} of unknown elements), "
            + (f"{counts['corrupt']:,} corrupt" if verify else "digests not checked")
        )
        if counts["corrupt"]:
            ctx.warn(
                f"{counts['corrupt']:,} container(s) fail their content digest: see {path}. "
                "The fix does not repair them (a container with the right identity counts as "
                "healthy); restore them from a backup"
            )


def scan_counts(db: sqlite3.Connection, selected: list[str]) -> dict[str, int]:
    """Set-based counts over the catalog and the scan's temp tables."""
    row = db.execute(
        """WITH sel AS (SELECT value AS pool FROM json_each(?))
           SELECT
             (SELECT count(*) FROM containers WHERE pool IN sel),
             (SELECT count(*) FROM containers c WHERE c.pool IN sel AND NOT EXISTS
                (SELECT 1 FROM temp.pools_present p WHERE p.container_id = c.id)),
             (SELECT count(DISTINCT c.element_id) FROM containers c WHERE c.pool IN sel
                AND NOT EXISTS (SELECT 1 FROM temp.pools_present p WHERE p.container_id = c.id)),
             (SELECT count(*) FROM temp.pools_file f WHERE f.kind = 'source'
                AND f.container_id IS NULL AND f.pool IN sel),
             (SELECT count(*) FROM temp.pools_file f WHERE f.kind = 'source'
                AND f.container_id IS NULL AND f.pool IN sel
                AND NOT EXISTS (SELECT 1 FROM elements e WHERE e.oid = f.oid))""",
        (json.dumps(selected),),
    ).fetchone()
    keys = ("containers_checked", "missing", "elements_with_missing", "unreferenced", "orphans")
    return dict(zip(keys, (int(v) for v in row), strict=True))


def check_rows(db: sqlite3.Connection, selected: list[str]) -> Iterator[dict[str, Any]]:
    """The per-element log of the check, streamed in element order."""
    cursor = db.execute(
        """WITH sel AS (SELECT value AS pool FROM json_each(?))
           SELECT e.path, 'missing', c.pool, c.relpath, c.type_manager,
                  (SELECT count(*) FROM container_versions cv WHERE cv.container_id = c.id), ''
           FROM containers c JOIN elements e ON e.id = c.element_id
           WHERE c.pool IN sel
             AND NOT EXISTS (SELECT 1 FROM temp.pools_present p WHERE p.container_id = c.id)
           UNION ALL
           SELECT coalesce(e.path, '(unknown element ' || f.oid || ')'), 'unreferenced',
                  f.pool, f.relpath, f.type_manager, f.versions, coalesce(f.corrupt, '')
           FROM temp.pools_file f LEFT JOIN elements e ON e.oid = f.oid
           WHERE f.kind = 'source' AND f.container_id IS NULL AND f.pool IN sel
           UNION ALL
           SELECT coalesce(e.path, '(unknown element ' || f.oid || ')'),
                  CASE f.kind WHEN 'cleartext' THEN 'corrupt cleartext' ELSE 'corrupt' END,
                  f.pool, f.relpath, f.type_manager, f.versions, f.corrupt
           FROM temp.pools_file f LEFT JOIN elements e ON e.oid = f.oid
           WHERE f.corrupt IS NOT NULL AND (f.container_id IS NOT NULL OR f.kind = 'cleartext')
           ORDER BY 1, 2, 3, 4""",
        (json.dumps(selected),),
    )
    keys = ("element", "kind", "pool", "relpath", "type_manager", "versions", "corrupt")
    for row in cursor:
        item = dict(zip(keys, row, strict=True))
        item["corrupt"] = ", ".join(json.loads(item["corrupt"])) if item["corrupt"] else ""
        yield item


class FixPools(_PoolAction):
    name = "pools.fix"
    summary = (
        "rebuild missing containers from alternates and cleartext; with force+fix, accept "
        "the loss the window allows"
    )
    destructive = True

    def check(self, ctx: StepContext) -> Iterable[Check]:
        checks = list(self.site_checks(ctx))
        try:
            window.parse(self.args.get("allow_missing_data_since", window.DEFAULT), ctx.now)
            checks.append(Check("allowed-data-loss window is valid", True))
        except RecoverError as exc:
            checks.append(Check("allowed-data-loss window is valid", False, exc.message, exc.fix))
        named = self.args.get("elements", [])
        if named and all(c.ok for c in checks[:1]):
            known = {
                r[0]
                for r in ctx.db.execute(
                    "SELECT path FROM elements WHERE path IN (SELECT value FROM json_each(?))",
                    (json.dumps(named),),
                )
            }
            unknown = [p for p in named if p not in known]
            checks.append(
                Check(
                    "named elements exist",
                    not unknown,
                    "unknown: " + ", ".join(unknown[:10]) if unknown else "",
                    fix="name elements by their path in the catalog's elements table",
                )
            )
        return checks

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
            state = self._analyse(ctx, win, mode, work)
        if state["phase"] == "apply":
            batch = int(self.args.get("batch_size", BATCH))
            replay(ctx, work, state, batch, ctx.checkpoint)
            state = {**state, "phase": "report"}
            ctx.checkpoint(state)
        if state["phase"] == "report":
            state = self._reports(ctx, win, mode, work, state)
        ctx.media.remove(work)
        self._finish(ctx, win, mode, state)

    def _analyse(
        self, ctx: StepContext, win: window.Window, mode: Mode, work: str
    ) -> dict[str, Any]:
        pools = scan.load_pools(ctx.db)
        selected = self.selected(pools)
        # Unreferenced containers and cleartext copies are the candidate sources:
        # their digests are checked while they are read anyway.
        stats = scan.scan(ctx, pools, verify=lambda _p, referenced: not referenced)
        summary = Summary(scan_counts(ctx.db, selected))
        summary.counts["cleartext_copies"] = stats.cleartext
        examples = analyse(ctx, pools, selected, win, mode, work, summary)
        scan.drop_temp(ctx.db)
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
        counts = {k: int(v) for k, v in state["summary"].items()}
        for key in ("identical", "superset", "subset", "nonoptimised", "none"):
            counts.setdefault(f"match_{key}", 0)
        for key in (
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
        ):
            counts.setdefault(key, 0)
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
