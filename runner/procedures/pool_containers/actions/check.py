"""`pools.check`: the read-only report of missing, unreferenced and corrupt containers."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

from runner.contract import Output, StepContext, declare_outputs
from runner.procedures.pool_containers import pool_scan
from runner.procedures.pool_containers.actions.base import PoolsAction, scan_counts

CHECK_REPORT = "reports/pools-check.txt"


class CheckPools(PoolsAction):
    name = "pools.check"
    summary = (
        "check the storage pools: missing and unreferenced containers, corrupt digests (read only)"
    )
    outputs = declare_outputs(
        containers_checked=Output("integer", "containers checked"),
        missing=Output("integer", "containers missing"),
        elements_with_missing=Output("integer", "elements with a missing container"),
        unreferenced=Output("integer", "containers no element refers to"),
        orphans=Output("integer", "unreferenced containers of unknown elements"),
        corrupt=Output("integer", "containers failing their digest"),
        digests_checked=Output("integer", "digests checked"),
        cleartext_copies=Output("integer", "cleartext copies found"),
        report=Output("string", "the report written"),
    )

    def run(self, ctx: StepContext) -> None:
        pools = pool_scan.load_pools(ctx.db)
        selected = self.selected(pools)
        verify = bool(self.args.get("verify_digests", True))
        stats = pool_scan.scan(
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
        pool_scan.drop_temp(ctx.db)
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
