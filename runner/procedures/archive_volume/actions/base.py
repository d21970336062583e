"""What every archive action shares: the catalog attachment and the volume checks."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from runner.contract import Action, Check, catalog_shape_checks
from runner.errors import MediaError, PreconditionFailed, SiteError
from runner.procedures.archive_volume import catalog as cat
from runner.procedures.archive_volume.media import VolumeReader

if TYPE_CHECKING:
    from runner.contract import StepContext
    from runner.site import Site


@dataclass(frozen=True)
class VolumeNeed:
    """What an action needs of the volume its step names (`volume:`)."""

    online: bool | None  # True online, False offline, None either
    closed: bool = True


class ArchiveAction(Action):
    """Base of the archive actions: one catalog, attached as `catalog`.

    Every action sets `volume_need`: the state of the step's volume its shared
    checks require, or None for an action that names no single volume to work
    on (load and unload check the carriers they act on themselves).
    """

    volume_need: ClassVar[VolumeNeed | None]

    def databases(self, site: Site) -> dict[str, str]:
        return {cat.CATALOG_ALIAS: site.location("catalog", cat.CATALOG_DEFAULT)}

    def preflight(self, ctx: StepContext) -> Iterable[Check]:
        """The catalog has the archive tables and columns, holding values of the
        declared types (checked before a run's first step changes anything)."""
        return catalog_shape_checks(
            ctx.db,
            cat.SCHEMA,
            what="the archive catalog",
            fix="point site.catalog at the archive catalog (generate one with "
            "`recover world archive DIR`)",
            alias=cat.CATALOG_ALIAS,
        )

    def shared_checks(self, ctx: StepContext) -> Iterable[Check]:
        need = self.volume_need
        if need is None:
            return ()
        return self.volume_checks(ctx, online=need.online, closed=need.closed)

    @property
    def volume_ref(self) -> str:
        return str(self.args["volume"])

    def volume_checks(
        self, ctx: StepContext, *, online: bool | None, closed: bool = True
    ) -> Iterator[Check]:
        """Catalog readable, volume exists, closed, and online/offline as required.

        Stops after the first check that makes the others meaningless.
        """
        try:
            volume = cat.get_volume(ctx.db, self.volume_ref)
        except sqlite3.Error as exc:
            yield Check(
                "catalog readable",
                False,
                f"the archive catalog cannot be read: {exc}",
                "point site.catalog at the archive catalog (generate one with "
                "`recover world archive DIR`)",
            )
            return
        yield Check(
            "volume exists",
            volume is not None,
            f"volume {self.volume_ref}" + ("" if volume else " is not in the catalog"),
            None
            if volume
            else "check the volume_ref in table volumes (a cleaned-up volume is removed)",
        )
        if volume is None:
            return
        if closed:
            yield Check(
                "volume closed",
                volume.status == "closed",
                f"volume {volume.volume_ref} is {volume.status}",
                None
                if volume.status == "closed"
                else "close the volume in the archive before recovering it",
            )
        if online is True:
            yield Check(
                "volume online",
                volume.online,
                f"volume {volume.volume_ref} is {'online' if volume.online else 'offline'}",
                None
                if volume.online
                else f"load carrier {volume.carrier_id} "
                f"(step archive.load with volume: {volume.volume_ref})",
            )
        elif online is False:
            yield Check(
                "volume offline",
                not volume.online,
                f"volume {volume.volume_ref} is {'online' if volume.online else 'offline'}",
                None
                if not volume.online
                else f"unload carrier {volume.carrier_id} "
                f"(step archive.unload with volume: {volume.volume_ref})",
            )


def media_problem(ctx: StepContext, volume: cat.Volume) -> str | None:
    """Why a volume's media file cannot be used (bad header or size), or None."""
    try:
        with open_volume(ctx, volume):
            return None
    except (MediaError, SiteError) as exc:
        return exc.message


@contextmanager
def open_volume(ctx: StepContext, volume: cat.Volume) -> Iterator[VolumeReader]:
    """Open and check a volume's media file; closes it afterwards."""
    handle = ctx.media.open(volume.media_path)
    try:
        yield VolumeReader(handle, volume.media_path, expected_ref=volume.volume_ref)
    finally:
        handle.close()


def require_checks(checks: Iterator[Check]) -> None:
    """Raise for the first failed check (run() repeats its checks defensively)."""
    for check in checks:
        if not check.ok:
            raise PreconditionFailed(f"{check.name}: {check.detail}", fix=check.fix)
