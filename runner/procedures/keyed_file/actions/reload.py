"""keyed.reload: a new pair from the valid records, swapped in when complete.

Reload leaves deleted records behind: they were deleted before the crash, so
that is no loss (docs/keyed_file.md). It replaces the pair (the old one kept
as `.bak`) and so is destructive and needs a confirmation.
"""

from __future__ import annotations

from collections.abc import Iterable

from runner.contract import Check, Output, StepContext, declare_outputs
from runner.errors import RecoverError
from runner.procedures.keyed_file.actions.base import TEMPLATES, KeyedAction
from runner.procedures.keyed_file.bulkload import ReloadResult, reload_pair
from runner.procedures.keyed_file.media import MAX_SECTORS_PER_BLOCK, too_long_keys


class Reload(KeyedAction):
    name = "keyed.reload"
    summary = (
        "build a new pair from the valid records with fresh balanced B-trees; "
        "swap it in when complete (old pair kept as .bak)"
    )
    destructive = True
    outputs = declare_outputs(
        records=Output("integer", "records loaded"),
        deleted_dropped=Output("integer", "deleted records dropped"),
        key_values=Output("list", "entries per key after the reload"),
    )
    crashed_fix = "run keyed.repair first: a reload needs a repaired file"

    def shared_checks(self, ctx: StepContext) -> Iterable[Check]:
        """Once the new pair is built (the journal says so), the step only swaps it
        in, and the old pair may be half renamed to .bak: the swap's own record is
        what to check then, not the old pair, which a resumed step must not need."""
        if ctx.state.get("phase") != "built":
            return super().shared_checks(ctx)
        data_rel, key_rel = self.paths(ctx)
        pairs = [(data_rel, data_rel + ".new"), (key_rel, key_rel + ".new")]
        whole = all(ctx.media.exists(live) or ctx.media.exists(new) for live, new in pairs)
        return [
            Check(
                "the built pair can be swapped in",
                whole,
                "" if whole else "neither the file nor its .new is there",
                fix=f"put back {data_rel} and {key_rel} (from their .bak copies) and run "
                "the playbook again with --new-run to rebuild the pair",
            )
        ]

    def own_checks(self, ctx: StepContext) -> Iterable[Check]:
        """A sectors_per_block argument must leave room for every key."""
        spb = self.args.get("sectors_per_block")
        if spb is not None and ctx.state.get("phase") != "built":
            try:
                with self.opened(ctx) as (_d, _k, info):
                    control = info.control
            except RecoverError:
                return  # already reported by "keyed file opens"

            def too_long(n: int) -> list[int]:
                return too_long_keys(control.with_(sectors_per_block=n))

            small = too_long(spb)
            fits = next((n for n in range(1, MAX_SECTORS_PER_BLOCK + 1) if not too_long(n)), None)
            yield Check(
                f"{spb}-sector key blocks hold every key",
                not small,
                f"key(s) {small} are too long" if small else "",
                fix=f"choose sectors_per_block from {fits} to {MAX_SECTORS_PER_BLOCK} "
                "(the smallest that holds two entries of the longest key), or leave it out "
                "to keep the old file's"
                if fits
                else "leave sectors_per_block out to keep the old file's",
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
        # The swap is a recorded sequence: each rename is checkpointed, so a
        # resumed step knows which renames are done and which one may have been
        # done by a killed attempt (MediaStore.move finds it done and counts it).
        done, renamed = int(ctx.state.get("renamed", 0)), 0
        swaps = [(data_rel, data_rel + ".new"), (key_rel, key_rel + ".new")]
        for live, new in ctx.progress(swaps, len(swaps), "swap in"):
            for src, dst in ([(live, live + ".bak")] if backup else []) + [(new, live)]:
                renamed += 1
                if renamed > done:
                    ctx.media.move(src, dst)
                    ctx.checkpoint({**ctx.state, "renamed": renamed})
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
