"""The one base action of the inventory procedure: what every action needs."""

from __future__ import annotations

from collections.abc import Iterable

from recover_inventory import catalog
from runner.contract import Action, Check, StepContext, tables_check
from runner.site import Site

DEFAULT_SHELF = "media/shelf.dat"


class InventoryAction(Action):
    """The catalog attached as `catalog`, and the shelf file it describes."""

    @property
    def shelf(self) -> str:
        return str(self.args.get("shelf", DEFAULT_SHELF))

    def databases(self, site: Site) -> dict[str, str]:
        return {"catalog": site.location("catalog", "catalog.sqlite")}

    def shared_checks(self, ctx: StepContext) -> Iterable[Check]:
        yield tables_check(
            ctx.db,
            catalog.TABLES,
            "the catalog has the inventory tables",
            fix="point site.catalog at the inventory catalog",
        )
        yield Check(
            f"the shelf file {self.shelf} exists",
            ctx.media.exists(self.shelf),
            fix="set the step's `shelf` argument to the site's shelf file",
        )
