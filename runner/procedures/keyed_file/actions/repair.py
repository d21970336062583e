"""keyed.repair: key-information recovery, written while the key file is copied.

Repair deletes key values that point to no valid record (past the keyed EOF,
or to a deleted record): the records they named do not exist, so that is
counted as a change, not as loss (docs/keyed_file.md). It rewrites the pair
and cannot be undone, so it is destructive and needs a confirmation.
"""

from __future__ import annotations

import contextlib

from runner.contract import Output, StepContext, declare_outputs
from runner.procedures.keyed_file.actions.base import (
    TEMPLATES,
    KeyedAction,
    copy_file,
    report_findings,
)
from runner.procedures.keyed_file.keyinfo import Findings, inspect_pair, repaired_control
from runner.procedures.keyed_file.media import SECTOR, DataHeader


class Repair(KeyedAction):
    name = "keyed.repair"
    summary = (
        "key-information recovery: reset EOFs, delete dangling key values, "
        "compare key counts, reset the crash flag"
    )
    destructive = True
    outputs = declare_outputs(
        missing_keys=Output("integer", "key values missing from the key trees"),
        reload_needed=Output("boolean", "whether a reload is still needed"),
        dangling_deleted=Output("integer", "dangling key entries deleted"),
        fs_eof_reset=Output("boolean", "whether the file-system end of file was reset"),
        key_eof_reset=Output("boolean", "whether the key end of file was reset"),
        valid_records=Output("integer", "valid records"),
        fs_eof=Output("integer", "file-system end of file"),
        keyed_eof=Output("integer", "keyed end of file"),
        key_eof=Output("integer", "key end of file before"),
        key_eof_after=Output("integer", "key end of file after"),
        keys_before=Output("list", "entries per key tree before"),
        dangling_per_key=Output("list", "dangling entries per key"),
        key_counts=Output("list", "entries per key tree after"),
    )
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
            findings = Findings.from_state(saved) if saved is not None else fresh
            for part in ctx.progress(("data file", "key file"), 2, "repaired files"):
                # Decided by what was found on the damaged pair: a killed attempt may
                # already have fixed the data file, and the rewrite (same bytes) is
                # still this step's work, in its media summary as in an uninterrupted run.
                if part == "data file" and findings.fs_eof_reset:
                    header = info.header
                    with ctx.media.writer(data_rel) as dout:
                        copy_file(data, dout)
                        dout.seek(0)
                        fixed = DataHeader(header.record_length, header.keyed_eof, header.keyed_eof)
                        dout.write(fixed.encode())
                elif part == "key file":
                    stack.close()  # replaces the key file: the repair's last write
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
        view = {**report_findings(ctx, f), "user": user}
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
