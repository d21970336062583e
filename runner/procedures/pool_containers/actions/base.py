"""`PoolsAction`: what every `pools.*` action needs from the site, and the
counts over the pool scan that check and fix both report."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator

from runner.contract import Action, Check, StepContext, catalog_shape_checks, tables_check
from runner.procedures.pool_containers import catalog
from runner.procedures.pool_containers.pool_scan import Pool
from runner.site import Site


class PoolsAction(Action):
    """The base of the pools actions: the catalog, its pools and their directories."""

    def databases(self, site: Site) -> dict[str, str]:
        return {"catalog": site.location("catalog", "catalog.sqlite")}

    def preflight(self, ctx: StepContext) -> Iterator[Check]:
        """The catalog's tables, columns and value types, then the shared checks
        (pool paths and directories, named pools): no step of the procedure
        changes them, so a run checks them before its first step."""
        shape = catalog_shape_checks(
            ctx.db,
            catalog.DDL,
            what="the repository catalog",
            fix="point site.catalog at the repository database (see docs/pool_containers.md)",
        )
        yield from shape
        if all(c.ok for c in shape):
            yield from self.shared_checks(ctx)

    def shared_checks(self, ctx: StepContext) -> Iterator[Check]:
        """Preconditions shared by check and fix (all reported at once by plan); a
        failed table or path check ends the list, as the later ones rely on it."""
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
        """The source pools the step looks at: those named, else every one."""
        names = self.args.get("pools") or [p.name for p in pools if p.kind == "source"]
        return sorted(names)


def scan_counts(db: sqlite3.Connection, selected: list[str]) -> dict[str, int]:
    """Set-based counts over the catalog and the scan's temp tables (raw SQL: timed
    by the benchmark)."""
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
