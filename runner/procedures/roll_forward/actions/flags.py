"""Actions on database flags: show them, set them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from runner.contract import Check, Output, StepContext, declare_outputs
from runner.errors import SafetyRefusal, StepFailed
from runner.procedures.roll_forward.actions.base import (
    RollForwardAction,
    database_exists,
    read_all_flags,
)
from runner.procedures.roll_forward.catalog import (
    FLAG_NAMES,
    alias_for,
    database_rel,
    read_flags,
    read_online_backup,
    write_flags,
)
from runner.procedures.roll_forward.media import log_name

CLEAR_MUST_RECOVER = "rollforward-clear-must-recover"


class MustRecoverFirst(SafetyRefusal):
    """Access cannot be enabled before the database is recovered."""


class ShowFlags(RollForwardAction):
    name = "rollforward.show_flags"
    summary = "list the flags of databases (access, recovery, must-recover, logging, backup stamp)"
    outputs = declare_outputs(
        flags=Output("object", "each database's flags, by name"),
    )

    def own_checks(self, ctx: StepContext) -> Iterable[Check]:
        return [database_exists(ctx, name) for name in self.names()]

    def run(self, ctx: StepContext) -> None:
        rows = []
        for name in self.names():
            flags = read_flags(ctx.db, alias_for(name), database_rel(name))
            online = read_online_backup(ctx.db, alias_for(name), flags)
            rows.append(flags.as_dict() | {"online_backup": online and online.as_dict()})
        for row in rows:
            ctx.note(
                f"{row['database']}: access {row['access']}, recovery {row['recovery']}, "
                f"must-recover {row['must_recover']}, logging {row['logging']}, "
                f"backup stamp {row['backup_stamp'] or '-'}"
                f"{'' if row['backup_by_store'] else ' (not by store utility)'}, "
                f"open {row['open_count']}/{row['total_opens']}"
                + (_online_text(row) if row["online_backup"] else "")
            )
        ctx.output(flags={row["database"]: row for row in rows})
        dest = self.args.get("report", "reports/rollforward/flags.txt")
        ctx.report("roll_forward/flags.txt.j2", dest, {"rows": rows, "now": ctx.now.isoformat()})


def _online_text(row: dict[str, Any]) -> str:
    point = row["online_backup"]
    return (
        f", online backup: log file {log_name(row['log_set'] or '?', point['log_file'])}, "
        f"after record {point['log_record']} (logging id {point['logging_id']})"
    )


class SetFlags(RollForwardAction):
    name = "rollforward.set_flags"
    summary = "enable or disable access, recovery, must-recover or logging of databases"
    outputs = declare_outputs(
        databases=Output("list", "databases changed"),
        set=Output("object", "the flags set"),
    )

    def own_checks(self, ctx: StepContext) -> Iterable[Check]:
        return [database_exists(ctx, name) for name in self.names()]

    def run(self, ctx: StepContext) -> None:
        wanted = {f: self.args[f] for f in FLAG_NAMES if f in self.args}
        if not wanted:
            raise StepFailed(
                "set_flags names no flag to set",
                fix="give at least one of access, recovery, must_recover, logging",
            )
        refusals = []
        current = read_all_flags(ctx, self.names())
        for name, flags in current.items():
            must = wanted.get("must_recover", flags.must_recover)
            if wanted.get("access") == "enabled" and must == "enabled":
                refusals.append(f"{name} must be recovered before it can be opened for access")
            if (
                wanted.get("must_recover") == "disabled"
                and flags.must_recover == "enabled"
                and not ctx.confirmed(CLEAR_MUST_RECOVER)
            ):
                refusals.append(
                    f"{name}: clearing must-recover without a recovery needs "
                    f"confirmation {CLEAR_MUST_RECOVER}"
                )
        if refusals:
            # The confirmation only lifts the must-recover refusal; opening needs a recovery.
            opening = any("before it can be opened" in r for r in refusals)
            raise MustRecoverFirst(
                "; ".join(refusals) + "; no flag was changed",
                fix="roll the database forward first (rollforward.recover)"
                + (
                    ""
                    if opening
                    else f", or grant --confirm {CLEAR_MUST_RECOVER} to clear must-recover on "
                    "your responsibility"
                ),
            )
        for name, flags in current.items():
            had = flags.as_dict()
            changes = {f: v for f, v in wanted.items() if had[f] != v}
            if changes:
                write_flags(ctx.db, alias_for(name), changes)
            for flag, value in changes.items():
                ctx.changed("rf_flags", f"{flag} -> {value}")
            ctx.note(
                f"{name}: "
                + (
                    ", ".join(f"{f} {v}" for f, v in changes.items())
                    or "flags already as requested"
                )
            )
        ctx.output(databases=self.names(), set=wanted)
