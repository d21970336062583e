"""rollforward.restore: put the backup copies back, keeping the damaged databases."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

from runner.contract import Check, Output, StepContext, declare_outputs
from runner.errors import StepFailed
from runner.procedures.roll_forward.actions.base import (
    DatabaseInUse,
    RollForwardAction,
    open_for_access,
    read_all_flags,
)
from runner.procedures.roll_forward.catalog import (
    alias_for,
    backup_alias,
    backup_rel,
    database_rel,
    read_flags,
    valid_name,
    write_flags,
)
from runner.site import Site


class Restore(RollForwardAction):
    name = "rollforward.restore"
    summary = "restore databases from their backup copies, keeping a copy of the damaged ones"
    destructive = True
    outputs = declare_outputs(
        restored=Output("object", "each database restored, by name"),
    )

    def databases(self, site: Site) -> dict[str, str]:
        out = super().databases(site)
        for name in self.names():
            if valid_name(name) and site.path(backup_rel(name)).exists():
                out[backup_alias(name)] = backup_rel(name)
        return out

    def preflight(self, ctx: StepContext) -> Iterator[Check]:
        """Unknown databases, then the backups (no step changes them), before a
        run's first step."""
        unknown = list(super().preflight(ctx))
        yield from unknown
        if not unknown:
            yield from self.own_checks(ctx)

    def own_checks(self, ctx: StepContext) -> Iterator[Check]:
        """The backup of each database is there and has a stamp (the database
        itself may be missing: its backup file is then copied in)."""
        for name in self.names():
            if not ctx.media.exists(backup_rel(name)):
                yield Check(
                    f"backup of {name}",
                    False,
                    f"no backup copy {backup_rel(name)}",
                    fix=f"put the backup copy of {name} at {backup_rel(name)}",
                )
                continue
            try:
                flags = read_flags(ctx.db, backup_alias(name), backup_rel(name))
            except Exception as exc:
                yield Check(
                    f"backup of {name}",
                    False,
                    getattr(exc, "message", str(exc)),
                    fix=f"supply an intact backup copy at {backup_rel(name)}",
                )
                continue
            yield Check(
                f"backup of {name}",
                bool(flags.backup_stamp),
                f"backup stamp {flags.backup_stamp or 'missing'}",
                fix=f"a copy without a stamp cannot be matched to a log: put the backup copy "
                f"the store utility made of {name} (it carries the stamp) at {backup_rel(name)}",
            )

    def run(self, ctx: StepContext) -> None:
        names = self.names()
        # A missing database is copied in from its backup. Which ones were missing is
        # recorded before the first copy: a resumed attempt finds them there, and
        # must not keep the backup's bytes as a "damaged" database.
        copied_in = set(ctx.state.get("copied_in", ()))
        present = read_all_flags(
            ctx,
            [n for n in names if n not in copied_in and ctx.media.exists(database_rel(n))],
        )
        missing = [n for n in names if n not in present]
        if "copied_in" not in ctx.state and missing:
            ctx.checkpoint({**ctx.state, "copied_in": missing})  # before anything changed
        busy = open_for_access(present)
        if busy:
            raise DatabaseInUse(
                "refusing to overwrite databases open for access: "
                + ", ".join(busy)
                + "; nothing was restored",
                fix="close the database (open count 0) and disable access with "
                "rollforward.set_flags access: disabled, then restore",
            )
        stamp = ctx.now.strftime("%Y%m%dT%H%M%S")
        restored: dict[str, Any] = {}
        for name in names:
            target = database_rel(name)
            kept = None
            before = present.get(name)
            if before is not None:
                kept = _keep_damaged(ctx, name, stamp, target)
                _restore_tables(ctx.db, backup_alias(name), alias_for(name))
                # Flags are the database's catalog entry, not content: keep what the
                # administrator set; the backup brings its stamp and needs recovery.
                write_flags(
                    ctx.db,
                    alias_for(name),
                    {
                        "access": before.access,
                        "recovery": before.recovery,
                        "logging": before.logging,
                        "open_count": before.open_count,
                        "total_opens": before.total_opens,
                        "must_recover": "enabled",
                        "modified": 0,
                        "rolled_forward_to": None,
                        "recovered_at": None,
                    },
                )
            else:
                ctx.media.copy(backup_rel(name), target)
            flags = read_flags(ctx.db, backup_alias(name), backup_rel(name))
            restored[name] = {
                "backup": backup_rel(name),
                "stamp": flags.backup_stamp,
                "damaged_copy": kept,
            }
            ctx.changed("databases", "restored from backup")
            ctx.note(
                f"{name}: restored from {backup_rel(name)} (stamp {flags.backup_stamp})"
                + (f"; damaged copy kept as {kept}" if kept else "; it was missing")
            )
        ctx.output(restored=restored)


def _keep_damaged(ctx: StepContext, name: str, stamp: str, target: str) -> str:
    """Copy the damaged database aside under a name no earlier copy holds.

    A kept copy is never overwritten: a copy of this very state (a restore
    interrupted after copying, run again) is reused; any other one (an
    earlier restore at the same second, whose copy is the only damaged state
    left) keeps its name, and this one gets the next free suffix.
    """
    kept, n = f"damaged/{name}.{stamp}.sqlite", 1
    while ctx.media.exists(kept) and not _same_bytes(ctx, kept, target):
        n += 1
        kept = f"damaged/{name}.{stamp}_{n}.sqlite"
    # A copy of these very bytes is rewritten (the same bytes again): it is this
    # step's work, in its media summary, however often the step was interrupted.
    ctx.media.copy(target, kept)
    return kept


def _same_bytes(ctx: StepContext, first: str, second: str) -> bool:
    with ctx.media.open(first) as a, ctx.media.open(second) as b:
        while True:
            chunk = a.read(1 << 20)
            if chunk != b.read(1 << 20):
                return False
            if not chunk:
                return True


def _restore_tables(db: sqlite3.Connection, source: str, target: str) -> None:
    """Make `target` hold exactly the tables and indexes of `source` (inside our transaction)."""
    for (name,) in db.execute(
        f"SELECT name FROM {target}.sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    ).fetchall():
        db.execute(f'DROP TABLE {target}."{name}"')
    for kind, name, sql in db.execute(
        f"SELECT type, name, sql FROM {source}.sqlite_master WHERE sql IS NOT NULL "
        "AND name NOT LIKE 'sqlite_%' ORDER BY type = 'index', rowid"
    ).fetchall():
        prefix = next(
            (
                p
                for p in ("CREATE TABLE ", "CREATE INDEX ", "CREATE UNIQUE INDEX ")
                if sql.startswith(p)
            ),
            None,
        )
        if prefix is None:
            raise StepFailed(
                f"backup {source} holds a {kind} ({name}) that restore cannot copy",
                fix="restore this database with the store utility",
            )
        db.execute(prefix + f"{target}." + sql[len(prefix) :])
        if kind == "table":
            db.execute(f'INSERT INTO {target}."{name}" SELECT * FROM {source}."{name}"')
