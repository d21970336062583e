"""The keyed-file actions: verify, repair, count, reload.

Data-loss policy (see docs/keyed_file.md): none of these actions loses a
record. Repair deletes key values that point to no valid record (past the
keyed EOF, or to a deleted record): the records they named do not exist, so
that is counted as a change, not as loss. Reload leaves deleted records
behind: they were deleted before the crash. Both rewrite the pair and can
therefore not be undone (reload keeps the old pair as `.bak`), so both are
marked destructive and need a confirmation.
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Iterable
from typing import Any

from runner.contract import Check, StepContext
from runner.errors import MediaError, RecoverError
from runner.procedures.keyed_file.analysis import Findings, inspect_pair, repaired_control
from runner.procedures.keyed_file.btree import Leaf, walk
from runner.procedures.keyed_file.common import TEMPLATES, KeyedAction, copy_file
from runner.procedures.keyed_file.media import (
    MAX_SECTORS_PER_BLOCK,
    SECTOR,
    DataHeader,
    internal_capacity,
)
from runner.procedures.keyed_file.records import valid_map
from runner.procedures.keyed_file.reload import ReloadResult, reload_pair


def _report_findings(ctx: StepContext, findings: Findings) -> dict[str, Any]:
    return {**findings.view(), "now": ctx.now.isoformat(timespec="seconds")}


class Verify(KeyedAction):
    name = "keyed.verify"
    summary = "print file information, keyed parameters, control block and damage found"
    destructive = False

    def run(self, ctx: StepContext) -> None:
        with self.opened(ctx) as (data, key, info):
            findings = inspect_pair(data, key, info, progress=ctx.progress, deep=True)
        view = _report_findings(ctx, findings)
        view["physical_key_sectors"] = info.key_sectors
        dest = self.args.get("report", "reports/keyed-verify.txt")
        ctx.report(f"{TEMPLATES}/verify.txt.j2", dest, view)
        for line in damage_lines(findings):
            ctx.warn(line)
        if not findings.damaged:
            ctx.note(f"{findings.data_file}: no damage found")
        ctx.output(
            crashed=findings.crashed,
            damaged=findings.damaged,
            valid_records=findings.valid_records,
            dangling=findings.dangling,
            missing_keys=findings.missing_keys,
            reload_needed=findings.reload_needed,
        )


def damage_lines(f: Findings) -> list[str]:
    """One line per kind of damage found (verify warns them; the plan shows them)."""
    lines = []
    if f.crashed:
        lines.append(f"{f.data_file}: crash flag is set (the file was open when the system failed)")
    if f.fs_eof_reset:
        lines.append(
            f"data file EOF damaged: FS EOF {f.fs_eof:,} is behind the keyed EOF {f.keyed_eof:,}"
        )
    if f.key_eof_reset:
        lines.append(
            f"key-file EOF damaged: {f.key_eof:,} is before the end of the largest "
            f"key block ({f.largest_block_end:,})"
        )
    for k in f.keys:
        if k.dangling:
            lines.append(f"key {k.key_no}: {k.dangling:,} key values point to no valid record")
    if f.reload_needed:
        counts = ", ".join(f"key {k.key_no} {k.keys_after:,}" for k in f.keys)
        lines.append(
            f"key counts ({counts}) differ from the {f.valid_records:,} valid "
            "records: records have missing key values; the file must be reloaded"
        )
    return lines


class Repair(KeyedAction):
    name = "keyed.repair"
    summary = (
        "key-information recovery: reset EOFs, delete dangling key values, "
        "compare key counts, reset the crash flag"
    )
    destructive = True
    allow_crashed = True

    def run(self, ctx: StepContext) -> None:
        data_rel, key_rel = self.paths(ctx)
        user = self.user(ctx)
        saved = ctx.state.get("findings")
        with contextlib.ExitStack() as stack:
            data, key, info = stack.enter_context(self.opened(ctx))
            out = stack.enter_context(ctx.media.writer(key_rel))
            copy_file(key, out)

            def patch(address: int, block: bytes) -> None:
                out.seek(address * SECTOR)
                out.write(block)

            fresh = inspect_pair(data, key, info, patch=patch, progress=ctx.progress)
            out.seek(0)
            out.write(repaired_control(info.control, fresh, ctx.now, user).encode())
            if saved is None:
                # Before any file is replaced: a resumed run reports what was found
                # on the damaged pair, not on a half-repaired one.
                ctx.checkpoint({"findings": fresh.to_state(), "user": user})
            for part in ctx.progress(("data file", "key file"), 2, "repaired files"):
                if part == "data file" and fresh.fs_eof_reset:
                    header = info.header
                    with ctx.media.writer(data_rel) as dout:
                        copy_file(data, dout)
                        dout.seek(0)
                        fixed = DataHeader(header.record_length, header.keyed_eof, header.keyed_eof)
                        dout.write(fixed.encode())
                elif part == "key file":
                    stack.close()  # replaces the key file: the repair's last write
        findings = Findings.from_state(saved) if saved is not None else fresh
        self._account(ctx, findings, user)

    def _account(self, ctx: StepContext, f: Findings, user: str) -> None:
        if f.fs_eof_reset:
            ctx.changed(f.data_file, "FS EOF reset to keyed EOF")
            ctx.note(
                f"data file EOF damaged: FS EOF {f.fs_eof:,} reset to keyed EOF {f.keyed_eof:,}"
            )
        if f.key_eof_reset:
            ctx.changed(f.key_file, "key-file EOF reset")
            ctx.note(f"key-file EOF damaged: {f.key_eof:,} reset to {f.key_eof_after:,}")
        for k in f.keys:
            if k.dangling:
                ctx.changed(f.key_file, f"key {k.key_no}: dangling key values deleted", k.dangling)
                ctx.note(
                    f"key {k.key_no}: {k.dangling:,} key values deleted (they point "
                    f"to no valid record); {k.keys_after:,} remain"
                )
        if f.reload_needed:
            ctx.warn(
                f"records have missing key values ({f.missing_keys:,} in all keys): "
                "the file must be reloaded (keyed.reload)"
            )
        ctx.changed(f.key_file, "crash flag reset" if f.crashed else "last reset recorded")
        ctx.note(
            f"{f.data_file}: crash flag reset; repaired by {user} at "
            f"{ctx.now.isoformat(timespec='seconds')}"
        )
        view = {**_report_findings(ctx, f), "user": user}
        ctx.report(
            f"{TEMPLATES}/repair.txt.j2", self.args.get("report", "reports/keyed-repair.txt"), view
        )
        ctx.output(
            missing_keys=f.missing_keys,
            reload_needed=f.reload_needed,
            dangling_deleted=f.dangling,
            fs_eof_reset=f.fs_eof_reset,
            key_eof_reset=f.key_eof_reset,
            valid_records=f.valid_records,
            fs_eof=f.fs_eof,
            keyed_eof=f.keyed_eof,
            key_eof=f.key_eof,
            key_eof_after=f.key_eof_after,
            keys_before=[k.tree_keys for k in f.keys],
            dangling_per_key=[k.dangling for k in f.keys],
            key_counts=[k.keys_after for k in f.keys],
        )


class Count(KeyedAction):
    name = "keyed.count"
    summary = "count the valid records by reading the file in key order"
    destructive = False

    def run(self, ctx: StepContext) -> None:
        key_no = int(self.args.get("key", 1))
        with self.opened(ctx) as (data, key, info):
            if key_no > len(info.control.keys):
                raise MediaError(
                    f"{info.key_name} has {len(info.control.keys)} key(s); "
                    f"there is no key {key_no}",
                    fix="set `key` to a key number the file has",
                )
            valid = valid_map(data, info.header, info.data_name, ctx.progress)
            valid_records = valid.count(1)
            limit = len(valid)
            count = 0

            def on_leaf(leaf: Leaf) -> None:
                nonlocal count
                recnos = leaf.recnos
                if len(recnos) > 1 and max(recnos) < limit:
                    count += sum(operator.itemgetter(*recnos)(valid))
                else:
                    count += sum(1 for r in recnos if r < limit and valid[r])

            walk(key, info, key_no, on_leaf, ctx.progress)
        ctx.note(f"{info.data_name}: {count:,} valid records read in key {key_no} order")
        if count != valid_records:
            ctx.warn(
                f"reading in key {key_no} order finds {count:,} records, the data file "
                f"holds {valid_records:,} valid records: run keyed.repair, then "
                "keyed.reload"
            )
        ctx.output(count=count, valid_records=valid_records, agrees=count == valid_records)
        if self.args.get("report"):
            ctx.report(
                f"{TEMPLATES}/count.txt.j2",
                self.args["report"],
                {
                    "data_file": info.data_name,
                    "key_file": info.key_name,
                    "key": key_no,
                    "count": count,
                    "valid_records": valid_records,
                    "now": ctx.now.isoformat(timespec="seconds"),
                },
            )


class Reload(KeyedAction):
    name = "keyed.reload"
    summary = (
        "build a new pair from the valid records with fresh balanced B-trees; "
        "swap it in when complete (old pair kept as .bak)"
    )
    destructive = True
    crashed_fix = "run keyed.repair first: a reload needs a repaired file"

    def check(self, ctx: StepContext) -> Iterable[Check]:
        yield from super().check(ctx)
        spb = self.args.get("sectors_per_block")
        if spb is not None:
            try:
                with self.opened(ctx) as (_d, _k, info):
                    small = [
                        i + 1
                        for i, k in enumerate(info.control.keys)
                        if internal_capacity(info.control.with_(sectors_per_block=spb), k) < 2
                    ]
            except RecoverError:
                return  # already reported by "keyed file opens"
            yield Check(
                f"{spb}-sector key blocks hold every key",
                not small,
                f"key(s) {small} are too long" if small else "",
                fix=f"choose sectors_per_block up to {MAX_SECTORS_PER_BLOCK}, "
                "large enough for the longest key",
            )

    def run(self, ctx: StepContext) -> None:
        data_rel, key_rel = self.paths(ctx)
        user = self.user(ctx)
        backup = bool(self.args.get("backup", True))
        if ctx.state.get("phase") != "built":
            with (
                self.opened(ctx) as (data, _key, info),
                ctx.media.writer(data_rel + ".new") as dout,
                ctx.media.writer(key_rel + ".new") as kout,
            ):
                result = reload_pair(
                    data,
                    info.header,
                    info.control,
                    data_rel,
                    dout,
                    kout,
                    now=ctx.now,
                    user=user,
                    fill_percent=int(self.args.get("fill_percent", 90)),
                    memory_bytes=int(self.args.get("memory_mb", 128)) << 20,
                    sectors_per_block=self.args.get("sectors_per_block"),
                    progress=ctx.progress,
                )
            # Both new files are complete: from here on the step only swaps them in.
            ctx.checkpoint({"phase": "built", "result": result.to_state(), "user": user})
        else:
            result = ReloadResult.from_state(ctx.state["result"])
        swaps = [(data_rel, data_rel + ".new"), (key_rel, key_rel + ".new")]
        for live, new in ctx.progress(swaps, len(swaps), "swap in"):
            if ctx.media.exists(new):
                if backup and ctx.media.exists(live):
                    ctx.media.move(live, live + ".bak")
                ctx.media.move(new, live)
        self._account(ctx, result, data_rel, key_rel, user, backup)

    def _account(
        self,
        ctx: StepContext,
        r: ReloadResult,
        data_rel: str,
        key_rel: str,
        user: str,
        backup: bool,
    ) -> None:
        ctx.changed(data_rel, "records reloaded", r.records_loaded)
        ctx.changed(data_rel, "deleted records left behind", r.deleted_dropped)
        for k in r.keys:
            ctx.changed(key_rel, f"key {k.key_no}: key values written", k.entries)
        ctx.note(
            f"{data_rel}: reloaded {r.records_loaded:,} records "
            f"({r.deleted_dropped:,} deleted records left behind); every key rebuilt"
        )
        if backup:
            ctx.note(f"the old pair is kept as {data_rel}.bak and {key_rel}.bak")
        view = {
            **r.to_state(),
            "data_file": data_rel,
            "key_file": key_rel,
            "user": user,
            "backup": backup,
            "now": ctx.now.isoformat(timespec="seconds"),
        }
        ctx.report(
            f"{TEMPLATES}/reload.txt.j2", self.args.get("report", "reports/keyed-reload.txt"), view
        )
        ctx.output(
            records=r.records_loaded,
            deleted_dropped=r.deleted_dropped,
            key_values=[k.entries for k in r.keys],
        )


ACTIONS = (Verify, Repair, Count, Reload)
