"""keyed.verify: report what a crash left in a pair, changing nothing."""

from __future__ import annotations

from runner.contract import Output, StepContext, declare_outputs
from runner.procedures.keyed_file.actions.base import TEMPLATES, KeyedAction, report_findings
from runner.procedures.keyed_file.keyinfo import Findings, inspect_pair


class Verify(KeyedAction):
    name = "keyed.verify"
    summary = "print file information, keyed parameters, control block and damage found"
    destructive = False
    outputs = declare_outputs(
        crashed=Output("boolean", "whether the file was left open by a crash"),
        damaged=Output("boolean", "whether any damage was found"),
        valid_records=Output("integer", "valid records"),
        dangling=Output("integer", "key entries pointing to no valid record"),
        missing_keys=Output("integer", "key values missing from the key trees"),
        reload_needed=Output("boolean", "whether a reload is needed"),
    )

    def run(self, ctx: StepContext) -> None:
        with self.opened(ctx) as (data, key, info):
            findings = inspect_pair(data, key, info, progress=ctx.progress, deep=True)
        view = report_findings(ctx, findings)
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
