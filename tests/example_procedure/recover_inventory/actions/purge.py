"""inventory.purge: remove the damaged items from catalog and shelf (data loss)."""

from __future__ import annotations

from collections.abc import Iterable

from recover_inventory import catalog, media
from recover_inventory.actions.base import InventoryAction
from runner.clock import stamp
from runner.contract import Check, StepContext


class Purge(InventoryAction):
    name = "inventory.purge"
    summary = "delete the items a scan marked damaged, rewrite the shelf without them, report"
    destructive = True

    def own_checks(self, ctx: StepContext) -> Iterable[Check]:
        last = catalog.last_scan(ctx.db)
        yield Check(
            "the shelf has been scanned",
            last is not None,
            "" if last is None else f"last scan {last}",
            fix="run inventory.scan first",
        )

    def run(self, ctx: StepContext) -> None:
        purged = catalog.damaged_items(ctx.db)
        ids = {item["id"] for item in purged}
        records = media.decode(ctx.media.read_bytes(self.shelf))
        kept = [r for r in records if r.ok and r.item_id not in ids]
        if len(kept) != len(records):
            ctx.media.write_bytes(self.shelf, media.encode_all(kept))
        ctx.changed("items", "deleted", catalog.delete(ctx.db, sorted(ids)))
        ctx.lost("items", len(purged), (f"item {i['id']} ({i['name']})" for i in purged))
        ctx.report(
            "inventory/report.txt.j2",
            self.args["report"],
            {
                "at": stamp(ctx.now),
                "shelf": self.shelf,
                "purged": purged,
                "kept": catalog.count(ctx.db),
            },
        )
