"""Actions on database flags and backups: show flags, set flags, restore."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

from runner.contract import Action, Check, StepContext
from runner.errors import SafetyRefusal, StepFailed
from runner.procedures.roll_forward.catalog import (
    FLAG_NAMES,
    alias_for,
    backup_alias,
    backup_rel,
    database_rel,
    read_flags,
    valid_name,
    write_flags,
)
from runner.site import Site

CLEAR_MUST_RECOVER = "rollforward-clear-must-recover"


class DatabaseInUse(SafetyRefusal):
    """The database is open for access: someone may be changing it."""


class MustRecoverFirst(SafetyRefusal):
    """Access cannot be enabled before the database is recovered."""


class _Databases(Action):
    """Actions that take `databases: [name, ...]` and attach each as db_<name>."""

    def names(self) -> list[str]:
        return [str(n) for n in self.args.get("databases", [])]

    def databases(self, site: Site) -> dict[str, str]:
        out = {}
        for name in self.names():
            if valid_name(name) and site.path(database_rel(name)).exists():
                out[alias_for(name)] = database_rel(name)
        return out

    def check(self, ctx: StepContext) -> Iterable[Check]:
        for name in self.names():
            yield _exists_check(ctx, name)


def _exists_check(ctx: StepContext, name: str) -> Check:
    if not valid_name(name):
        return Check(
            f"database name {name!r}",
            False,
            "not a valid database name",
            fix="use letters, digits and _ (starting with a letter)",
        )
    if ctx.media.exists(database_rel(name)):
        return Check(f"database {name} exists", True)
    known = [n[: -len(".sqlite")] for n in ctx.media.listdir("databases") if n.endswith(".sqlite")]
    return Check(
        f"database {name} exists",
        False,
        f"unknown database {name!r}: there is no {database_rel(name)} "
        f"(known: {', '.join(known) or 'none'})",
        fix="check the databases param against the site's databases/ directory",
    )


class ShowFlags(_Databases):
    name = "rollforward.show_flags"
    summary = "list the flags of databases (access, recovery, must-recover, logging, backup stamp)"

    def run(self, ctx: StepContext) -> None:
        rows = [read_flags(ctx.db, alias_for(n), database_rel(n)).as_dict() for n in self.names()]
        for row in rows:
            ctx.note(
                f"{row['database']}: access {row['access']}, recovery {row['recovery']}, "
                f"must-recover {row['must_recover']}, logging {row['logging']}, "
                f"backup stamp {row['backup_stamp'] or '-'}"
                f"{'' if row['backup_by_store'] else ' (not by store utility)'}, "
                f"open {row['open_count']}/{row['total_opens']}"
            )
        ctx.output(flags={row["database"]: row for row in rows})
        dest = self.args.get("report", "reports/rollforward/flags.txt")
        ctx.report("roll_forward/flags.txt.j2", dest, {"rows": rows, "now": ctx.now.isoformat()})


class SetFlags(_Databases):
    name = "rollforward.set_flags"
    summary = "enable or disable access, recovery, must-recover or logging of databases"

    def run(self, ctx: StepContext) -> None:
        wanted = {f: self.args[f] for f in FLAG_NAMES if f in self.args}
        if not wanted:
            raise StepFailed(
                "set_flags names no flag to set",
                fix="give at least one of access, recovery, must_recover, logging",
            )
        refusals = []
        for name in self.names():
            flags = read_flags(ctx.db, alias_for(name), database_rel(name))
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
            raise MustRecoverFirst(
                "; ".join(refusals) + "; no flag was changed",
                fix="roll the database forward first (rollforward.recover), or grant "
                f"--confirm {CLEAR_MUST_RECOVER} to clear must-recover on your responsibility",
            )
        for name in self.names():
            alias = alias_for(name)
            current = read_flags(ctx.db, alias, database_rel(name)).as_dict()
            changes = {f: v for f, v in wanted.items() if current[f] != v}
            if changes:
                write_flags(ctx.db, alias, changes)
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


class Restore(_Databases):
    name = "rollforward.restore"
    summary = "restore databases from their backup copies, keeping a copy of the damaged ones"
    destructive = True

    def databases(self, site: Site) -> dict[str, str]:
        out = super().databases(site)
        for name in self.names():
            if valid_name(name) and site.path(backup_rel(name)).exists():
                out[backup_alias(name)] = backup_rel(name)
        return out

    def check(self, ctx: StepContext) -> Iterable[Check]:
        for name in self.names():
            if not valid_name(name):
                yield _exists_check(ctx, name)
                continue
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
                fix="a backup copy without a stamp cannot be matched to a log",
            )

    def run(self, ctx: StepContext) -> None:
        names = self.names()
        busy = []
        for name in names:
            if ctx.media.exists(database_rel(name)):
                flags = read_flags(ctx.db, alias_for(name), database_rel(name))
                if flags.access == "enabled" or flags.open_count > 0:
                    busy.append(f"{name} (access {flags.access}, open count {flags.open_count})")
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
            if ctx.media.exists(target):
                kept = f"damaged/{name}.{stamp}.sqlite"
                ctx.media.copy(target, kept)
                before = read_flags(ctx.db, alias_for(name), target)
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
