"""A toy procedure for testing the core engine without any real procedure.

Loaded through RECOVER_EXTRA_PROCEDURES=tests.toyproc. Its catalog is one table
of items; `toy.mark` changes them in batches (with checkpoints, progress and
optional loss), `toy.note` writes a media file and a report.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import click

from runner.contract import (
    Action,
    Check,
    Finding,
    Output,
    Procedure,
    ProcedureAssets,
    StepContext,
    StepView,
    declare_outputs,
)
from runner.site import Site


def build_site(root: Path, items: int = 100, bad: int = 5) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(root / "catalog.sqlite") as conn:
        conn.execute(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, state TEXT NOT NULL, "
            "bad INTEGER NOT NULL DEFAULT 0)"
        )
        conn.executemany(
            "INSERT INTO items (id, state, bad) VALUES (?, 'A', ?)",
            [(i, int(i <= bad)) for i in range(1, items + 1)],
        )
        conn.execute("CREATE TABLE settings (name TEXT PRIMARY KEY, online INTEGER)")
        conn.execute("INSERT INTO settings VALUES ('device', 0)")
    conn.close()
    (root / "media").mkdir(exist_ok=True)
    (root / "media" / "tape.bin").write_bytes(b"tape-data" * 10)
    (root / "scenario.json").write_text(json.dumps({"items": items, "bad": bad}))
    return root


class _Catalog(Action):
    def databases(self, site: Site) -> dict[str, str]:
        return {"catalog": site.location("catalog", "catalog.sqlite")}


class Mark(_Catalog):
    name = "toy.mark"
    summary = "mark items X in batches; bad items are deleted (data loss)"
    destructive = True
    outputs = declare_outputs(marked=Output("integer", "items marked"))
    loss_units = ("items",)
    args_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "begin": {"type": "integer", "minimum": 1},
            "end": {"type": "integer", "minimum": 1},
            "batch": {"type": "integer", "minimum": 1},
            "report": {"type": "string", "format": "site-path"},
        },
    }

    def check(self, ctx: StepContext) -> Iterable[Check]:
        online = ctx.db.execute("SELECT online FROM settings WHERE name='device'").fetchone()[0]
        yield Check(
            "device offline",
            not online,
            "device is online" if online else "",
            fix="run toy.device with online: false first",
        )

    def run(self, ctx: StepContext) -> None:
        begin, end = self.args.get("begin", 1), self.args.get("end", 10**9)
        batch = self.args.get("batch", 10)
        done = ctx.state.get("done", 0)
        ids = [
            r[0]
            for r in ctx.db.execute(
                "SELECT id FROM items WHERE id BETWEEN ? AND ? AND state = 'A' ORDER BY id",
                (begin, end),
            )
        ]
        pending: list[int] = []
        for item in ctx.progress(ids, len(ids), "items"):
            pending.append(item)
            if len(pending) == batch:
                self._apply(ctx, pending)
                done += len(pending)
                pending = []
                ctx.checkpoint({"done": done})
        if pending:
            self._apply(ctx, pending)
            done += len(pending)
        ctx.output(marked=done)
        if self.args.get("report"):
            rows = ctx.db.execute("SELECT id, state FROM items ORDER BY id")
            ctx.report("toy/items.txt.j2", self.args["report"], {"rows": rows, "total": done})

    def _apply(self, ctx: StepContext, ids: list[int]) -> None:
        marks = ",".join("?" * len(ids))
        bad = [
            r[0]
            for r in ctx.db.execute(f"SELECT id FROM items WHERE bad = 1 AND id IN ({marks})", ids)
        ]
        ctx.db.execute(f"DELETE FROM items WHERE bad = 1 AND id IN ({marks})", ids)
        cur = ctx.db.execute(f"UPDATE items SET state = 'X' WHERE id IN ({marks})", ids)
        ctx.changed("items", "state A -> X", cur.rowcount)
        ctx.changed("items", "deleted", len(bad))
        ctx.lost("items", len(bad), (f"item {i}" for i in bad))


class Device(_Catalog):
    name = "toy.device"
    summary = "put the device online or offline"
    args_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["online"],
        "properties": {"online": {"type": "boolean"}},
    }

    def run(self, ctx: StepContext) -> None:
        ctx.db.execute(
            "UPDATE settings SET online = ? WHERE name = 'device'", (int(self.args["online"]),)
        )
        ctx.changed("settings", "device online" if self.args["online"] else "device offline")


class Copy(Action):
    name = "toy.copy"
    summary = "copy a media file"
    outputs = declare_outputs(size=Output("integer", "bytes copied"))
    args_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["src", "dst"],
        "properties": {
            "src": {"type": "string", "format": "site-path"},
            "dst": {"type": "string", "format": "site-path"},
        },
    }

    def check(self, ctx: StepContext) -> Iterable[Check]:
        yield Check(f"{self.args['src']} exists", ctx.media.exists(self.args["src"]))

    def run(self, ctx: StepContext) -> None:
        ctx.media.copy(self.args["src"], self.args["dst"])
        ctx.output(size=len(ctx.media.read_bytes(self.args["dst"])))


class Wait(Action):
    name = "toy.wait"
    summary = "take `seconds` over `items` progress items (for the console's tests)"
    args_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["items", "seconds"],
        "properties": {
            "items": {"type": "integer", "minimum": 1},
            "seconds": {"type": "number", "minimum": 0},
        },
    }

    def run(self, ctx: StepContext) -> None:
        items, seconds = self.args["items"], self.args["seconds"]
        for _ in ctx.progress(range(items), items, "waited items"):
            time.sleep(seconds / items)
        ctx.note(f"waited {seconds}s over {items} items")
        ctx.warn("a warning worth reading once")


def _validate(steps: list[StepView]) -> list[Finding]:
    seen_device = False
    out = []
    for step in steps:
        if step.action == "toy.device":
            seen_device = True
        elif step.action == "toy.mark" and seen_device and step.args.get("batch") == 13:
            out.append(Finding(("steps", step.index, "args", "batch"), "13 is unlucky"))
    return out


@click.command()
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option("--items", default=100, show_default=True)
def world(directory: Path, items: int) -> None:
    """Generate a toy site."""
    build_site(directory, items)
    click.echo(f"toy site in {directory}")


PROCEDURE = Procedure(
    name="toy",
    title="Toy procedure for engine tests",
    actions=(Mark, Device, Copy, Wait),
    assets=ProcedureAssets(templates=Path(__file__).parent / "toy_templates"),
    world=world,
    validate_steps=_validate,
)

#: the toy procedure without its shipped template (RECOVER_EXTRA_PROCEDURES=tests.toyproc:BARE)
BARE = replace(PROCEDURE, assets=ProcedureAssets())
