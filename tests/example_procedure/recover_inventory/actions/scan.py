"""inventory.scan: find the items whose shelf record is missing or damaged."""

from __future__ import annotations

from recover_inventory import catalog, media
from recover_inventory.actions.base import InventoryAction
from runner.clock import stamp
from runner.contract import StepContext


class Scan(InventoryAction):
    name = "inventory.scan"
    summary = "read the shelf file; mark items whose record is missing or fails its checksum"

    def run(self, ctx: StepContext) -> None:
        good = {r.item_id for r in media.decode(ctx.media.read_bytes(self.shelf)) if r.ok}
        bad = [i for i in catalog.item_ids(ctx.db, "ok") if i not in good]
        ctx.changed("items", "state ok -> damaged", catalog.mark_damaged(ctx.db, bad))
        catalog.record_scan(ctx.db, stamp(ctx.now), len(bad))
        ctx.changed("scans", "inserted")
        damaged = catalog.count(ctx.db, "damaged")
        ctx.note(f"{damaged} damaged item(s) of {catalog.count(ctx.db)}")
        ctx.output(damaged=damaged)
