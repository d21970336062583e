"""Operator actions: load and unload carriers, scan a volume for unreadable blocks.

They let a playbook run the whole recovery unattended on the emulated site,
where a person would otherwise walk to the jukebox.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from runner.contract import Check, Output, declare_outputs
from runner.errors import MediaError
from runner.procedures.archive_volume import catalog as cat
from runner.procedures.archive_volume.actions.base import (
    ArchiveAction,
    VolumeNeed,
    media_problem,
    open_volume,
    require_checks,
)

if TYPE_CHECKING:
    from runner.contract import StepContext


class _CarrierAction(ArchiveAction):
    """Load or unload: the carriers are named directly, by volume, or by need."""

    loading: bool
    volume_need = None  # its own checks cover the carriers it names

    def carriers(self, ctx: StepContext) -> list[str]:
        """The carriers this step acts on, sorted, without duplicates."""
        wanted: set[str] = {str(c) for c in self.args.get("carriers") or ()}
        if self.args.get("volume"):
            volume = cat.require_volume(ctx.db, str(self.args["volume"]))
            wanted.add(volume.carrier_id)
        if self.args.get("copies_of"):
            wanted.update(c for c, _, _ in cat.carriers_needed(ctx.db, str(self.args["copies_of"])))
        return sorted(wanted)

    def own_checks(self, ctx: StepContext) -> Iterable[Check]:
        if not any(self.args.get(k) for k in ("carriers", "volume", "copies_of")):
            yield Check(
                "carriers named",
                False,
                "no carriers, volume or copies_of given",
                "name what to act on: carriers: [...], volume: REF or copies_of: REF",
            )
            return
        for key in ("volume", "copies_of"):
            ref = self.args.get(key)
            if ref and cat.get_volume(ctx.db, str(ref)) is None:
                yield Check(
                    "volume exists",
                    False,
                    f"{key}: volume {ref} is not in the catalog",
                    "check the volume_ref in table volumes",
                )
                return
        known = {row[0] for row in ctx.db.execute("SELECT carrier_id FROM catalog.carriers")}
        carriers = self.carriers(ctx)
        unknown = [c for c in carriers if c not in known]
        yield Check(
            "carriers exist",
            not unknown,
            f"unknown carrier(s): {', '.join(unknown)}" if unknown else ", ".join(carriers),
            "check the carrier ids in table carriers" if unknown else None,
        )
        if unknown or not self.loading:
            return
        # The device reads each volume's label when a carrier goes in: a volume
        # file with a broken header or size is refused before anything changes.
        for (ref,) in ctx.db.execute(
            "SELECT volume_ref FROM catalog.volumes WHERE carrier_id IN "
            f"({','.join('?' * len(carriers))}) ORDER BY volume_ref",
            carriers,
        ).fetchall():
            volume = cat.require_volume(ctx.db, ref)
            problem = media_problem(ctx, volume)
            yield Check(
                "volume media readable",
                problem is None,
                problem or f"{ref}: header and size are sound",
                "restore the volume file, or leave this carrier out" if problem else None,
            )

    def run(self, ctx: StepContext) -> None:
        require_checks(iter(self.check(ctx)))
        carriers = self.carriers(ctx)
        flag = 1 if self.loading else 0
        marks = ",".join("?" * len(carriers))
        changed = ctx.db.execute(
            f"UPDATE catalog.carriers SET loaded = ? WHERE loaded <> ? AND carrier_id IN ({marks})",
            [flag, flag, *carriers],
        ).rowcount
        volumes = ctx.db.execute(
            f"UPDATE catalog.volumes SET online = ? WHERE online <> ? AND carrier_id IN ({marks})",
            [flag, flag, *carriers],
        ).rowcount
        word = "loaded" if self.loading else "unloaded"
        ctx.changed("carriers", word, changed)
        ctx.changed("volumes", "online" if self.loading else "offline", volumes)
        ctx.note(f"{word} carrier(s): {', '.join(carriers)}")
        ctx.output(carriers=carriers, changed=changed)


class Load(_CarrierAction):
    name = "archive.load"
    summary = "Put carriers (and so their volumes) online, checking each volume's label"
    outputs = declare_outputs(
        carriers=Output("list", "carrier ids acted on"),
        changed=Output("integer", "carriers whose state changed (loaded now)"),
    )
    loading = True


class Unload(_CarrierAction):
    name = "archive.unload"
    summary = "Take carriers (and so their volumes) offline"
    outputs = declare_outputs(
        carriers=Output("list", "carrier ids acted on"),
        changed=Output("integer", "carriers whose state changed (unloaded now)"),
    )
    loading = False


class ScanVolume(ArchiveAction):
    name = "archive.scan_volume"
    summary = "Read every block of a volume and record its unreadable ordinal ranges"
    outputs = declare_outputs(
        ranges=Output("list", "unreadable ordinal ranges found, as {begin, end}"),
        unreadable_blocks=Output("integer", "blocks that could not be read"),
        blocks=Output("integer", "blocks read in all"),
    )
    volume_need = VolumeNeed(online=True, closed=False)

    def own_checks(self, ctx: StepContext) -> Iterable[Check]:
        problem = media_problem(ctx, cat.require_volume(ctx.db, self.volume_ref))
        yield Check(
            "volume media readable",
            problem is None,
            problem or "header and size are sound",
            "restore the volume file from the repair shop's image" if problem else None,
        )

    def run(self, ctx: StepContext) -> None:
        require_checks(iter(self.check(ctx)))
        volume = cat.require_volume(ctx.db, self.volume_ref)
        ranges: list[tuple[int, int]] = []
        start: int | None = None
        last = -1
        with open_volume(ctx, volume) as reader:
            total = reader.header.block_count
            for ordinal, block in ctx.progress(reader.scan(), total, f"scan {volume.volume_ref}"):
                if isinstance(block, MediaError):
                    if start is None:
                        start = ordinal
                    last = ordinal
                elif start is not None:
                    ranges.append((start, last))
                    start = None
            if start is not None:
                ranges.append((start, last))
        stamp = ctx.now.isoformat()
        ctx.db.execute(
            "DELETE FROM catalog.volume_scans WHERE volume_ref = ?", (volume.volume_ref,)
        )
        rows = ranges or [(-1, -1)]  # (-1, -1) records "scanned, nothing unreadable"
        ctx.db.executemany(
            "INSERT INTO catalog.volume_scans (volume_ref, begin, end, scanned_at)"
            " VALUES (?, ?, ?, ?)",
            [(volume.volume_ref, b, e, stamp) for b, e in rows],
        )
        unreadable = sum(e - b + 1 for b, e in ranges)
        ctx.changed("volume_scans", "ranges recorded", len(ranges))
        ctx.note(
            f"{volume.volume_ref}: {unreadable:,} unreadable block(s) of {total:,} in "
            f"{len(ranges)} range(s)"
            + (": " + ", ".join(f"{b}-{e}" for b, e in ranges[:20]) if ranges else "")
        )
        ctx.output(
            ranges=[{"begin": b, "end": e} for b, e in ranges],
            unreadable_blocks=unreadable,
            blocks=total,
        )
