"""The base of every roll-forward action: the databases it names and attaches.

Every action takes `databases: [name, ...]` and attaches each existing one as
db_<name>. What all of them need before anything else is names that can be
databases; whether each database must exist differs (restore rebuilds a
missing one from its backup), so that check is the actions' own
(`database_exists`), not a shared one.
"""

from __future__ import annotations

from collections.abc import Iterable

from runner.contract import Action, Check, StepContext
from runner.errors import SafetyRefusal
from runner.procedures.roll_forward.catalog import (
    Flags,
    alias_for,
    backup_rel,
    database_rel,
    read_flags,
    valid_name,
)
from runner.site import Site


class DatabaseInUse(SafetyRefusal):
    """The database is open for access: someone may be changing it."""


class RollForwardAction(Action):
    """Actions that take `databases: [name, ...]` and attach each as db_<name>."""

    def names(self) -> list[str]:
        return [str(n) for n in self.args.get("databases", [])]

    def databases(self, site: Site) -> dict[str, str]:
        out = {}
        for name in self.names():
            if valid_name(name) and site.path(database_rel(name)).exists():
                out[alias_for(name)] = database_rel(name)
        return out

    def preflight(self, ctx: StepContext) -> Iterable[Check]:
        """A named database that is neither there nor has a backup to restore it
        from is unknown, whichever step names it: said before the first step."""
        return [
            database_exists(ctx, name)
            for name in self.names()
            if valid_name(name)
            and not ctx.media.exists(database_rel(name))
            and not ctx.media.exists(backup_rel(name))
        ]

    def shared_checks(self, ctx: StepContext) -> Iterable[Check]:
        """A name that cannot be a database (only a failing check: the argument
        schema already refuses such names, so a valid one adds no line)."""
        return [database_exists(ctx, name) for name in self.names() if not valid_name(name)]


def read_all_flags(ctx: StepContext, names: Iterable[str]) -> dict[str, Flags]:
    """The flags of each named (attached) database."""
    return {n: read_flags(ctx.db, alias_for(n), database_rel(n)) for n in names}


def open_for_access(flags: dict[str, Flags]) -> list[str]:
    """The databases someone may be changing (access enabled or still open), described."""
    return [
        f"{name} (access {f.access}, open count {f.open_count})"
        for name, f in flags.items()
        if f.access == "enabled" or f.open_count > 0
    ]


def database_exists(ctx: StepContext, name: str) -> Check:
    """databases/<name>.sqlite exists; if not, the databases there are listed."""
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
