"""The work list of `pools.fix`: decide every element, write the work file.

The read-only half of the fix (named for what it produces, the work list
`rebuild` carries out; keyed_file's `analysis` means something else). After
the scan, the elements with missing containers are visited in id order;
for each one the algorithm in `rebind` picks the rebuild and the guards
decide whether the fix may go ahead. Every element's decision becomes one JSON
line of a work file, written atomically before anything is changed. The apply
phase replays that file in batches, so a run resumed after a crash carries
out exactly the decisions the interrupted run made, whatever it had already
moved or written.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any, BinaryIO

from runner.contract import StepContext
from runner.errors import MediaError
from runner.procedures.pool_containers import media, rebind
from runner.procedures.pool_containers.pool_scan import LOST_FOUND, Pool
from runner.procedures.pool_containers.rebind import (
    FIX,
    REFUSED_WINDOW,
    Candidate,
    Missing,
    Version,
)
from runner.procedures.pool_containers.window import Window

MAX_NOTES = 100


@dataclass(frozen=True)
class Mode:
    """What the step may change: force+fix = everything the guards allow;
    fix without force = only the elements named (the runner's form of the
    original's per-element confirmation); otherwise nothing."""

    force: bool
    fix: bool
    named: frozenset[str]  # element paths named in `elements` (empty = all)

    @property
    def label(self) -> str:
        if self.fix and self.force:
            return "force+fix"
        if self.fix:
            return "fix (named elements only)"
        return "report only"

    def guard_applies(self, path: str) -> bool:
        """The last-versions guard binds force mode; naming an element without
        force is the explicit agreement that lifts it."""
        return self.force or path not in self.named

    def applies(self, path: str, outcome: str) -> bool:
        if not self.fix or outcome != FIX:
            return False
        if self.force:
            return not self.named or path in self.named
        return path in self.named


@dataclass
class Summary:
    """Counts over the whole step, kept in the checkpoint state."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n


def write_worklist(
    ctx: StepContext,
    pools: list[Pool],
    selected: list[str],
    window: Window,
    mode: Mode,
    work: str,
    summary: Summary,
) -> list[str]:
    """Write the work file; return examples of accepted (applied) losses."""
    by_name = {p.name: p for p in pools}
    stamp = ctx.now.strftime("%Y%m%dT%H%M%SZ")
    examples: list[str] = []
    taken: dict[str, set[str]] = {}  # lost+found folder -> names present or planned
    notes = 0
    rows = _missing_rows(ctx.db, selected, sorted(mode.named))
    total = _count_elements(ctx.db, selected, sorted(mode.named))
    with ctx.media.writer(work) as out:
        grouped = groupby(rows, key=lambda r: r[0])
        for element_id, group in ctx.progress(grouped, total, "elements with missing containers"):
            line = _element(
                ctx, by_name, element_id, list(group), window, mode, stamp, summary, taken
            )
            out.write(json.dumps(line, separators=(",", ":")).encode() + b"\n")
            if line["apply"]:
                for lost in line["lost_accepted"]:
                    if len(examples) < 50:
                        examples.append(f"{line['path']}@@{lost[1]}/{lost[2]} (created {lost[3]})")
            if notes < MAX_NOTES:
                ctx.note(describe(line))
                notes += 1
    hidden = summary.counts.get("elements_examined", 0) - notes
    if hidden > 0:
        ctx.note(f"... and {hidden} more element(s): see the report")
    return examples


def _missing_rows(
    db: sqlite3.Connection, selected: list[str], named: list[str]
) -> Iterator[tuple[Any, ...]]:
    """Missing containers of the selected pools, by element then container."""
    return db.execute(
        """SELECT c.element_id, c.id, c.pool, c.relpath
           FROM containers c JOIN elements e ON e.id = c.element_id
           WHERE c.pool IN (SELECT value FROM json_each(:pools))
             AND (json_array_length(:named) = 0
                  OR e.path IN (SELECT value FROM json_each(:named)))
             AND NOT EXISTS (SELECT 1 FROM temp.pools_present p WHERE p.container_id = c.id)
           ORDER BY c.element_id, c.id""",
        {"pools": json.dumps(selected), "named": json.dumps(named)},
    )


def _count_elements(db: sqlite3.Connection, selected: list[str], named: list[str]) -> int:
    row = db.execute(
        """SELECT count(DISTINCT c.element_id)
           FROM containers c JOIN elements e ON e.id = c.element_id
           WHERE c.pool IN (SELECT value FROM json_each(:pools))
             AND (json_array_length(:named) = 0
                  OR e.path IN (SELECT value FROM json_each(:named)))
             AND NOT EXISTS (SELECT 1 FROM temp.pools_present p WHERE p.container_id = c.id)""",
        {"pools": json.dumps(selected), "named": json.dumps(named)},
    ).fetchone()
    return int(row[0])


def _element(
    ctx: StepContext,
    pools: dict[str, Pool],
    element_id: int,
    rows: list[tuple[Any, ...]],
    window: Window,
    mode: Mode,
    stamp: str,
    summary: Summary,
    taken: dict[str, set[str]],
) -> dict[str, Any]:
    db = ctx.db
    oid, path, tm = db.execute(
        "SELECT oid, path, type_manager FROM elements WHERE id = ?", (element_id,)
    ).fetchone()
    versions = [
        Version(r[0], r[1], r[2], r[3], r[4] == "present")
        for r in db.execute(
            """SELECT v.id, b.name, v.number, v.created_at, v.data
               FROM branches b JOIN versions v ON v.branch_id = b.id
               WHERE b.element_id = ? ORDER BY b.name, v.number""",
            (element_id,),
        )
    ]
    by_id = {v.id: v for v in versions}
    missing = []
    for _element_id, container_id, pool, relpath in rows:
        expected = tuple(
            sorted(
                (
                    by_id[r[0]]
                    for r in db.execute(
                        "SELECT version_id FROM container_versions WHERE container_id = ?",
                        (container_id,),
                    )
                    if r[0] in by_id and by_id[r[0]].present
                ),
                key=lambda v: v.key,
            )
        )
        missing.append(Missing(container_id, pool, relpath, expected))
    candidates = list(_candidates(ctx, pools, oid, summary))
    alternates = [c for c in candidates if c.kind == "source"]
    cleartext = [c for c in candidates if c.kind == "cleartext"]
    occupied = {(c.pool, c.relpath) for c in alternates}
    decision = rebind.decide_element(
        tm, missing, versions, alternates, cleartext, window, force=mode.guard_applies(path)
    )
    applied = mode.applies(path, decision.outcome)
    _count(summary, decision, applied, len(alternates))
    return {
        "element": element_id,
        "oid": oid,
        "path": path,
        "tm": tm,
        "outcome": decision.outcome,
        "apply": applied,
        "guard": decision.guard_branches,
        "containers": [_container(pools, oid, tm, c, stamp, occupied) for c in decision.containers],
        "alternates": [_alternate(ctx, pools[a.pool], a, stamp, taken) for a in alternates],
        "lost_accepted": [_lost(v) for v in decision.lost_accepted],
        "lost_refused": [_lost(v) for v in decision.lost_refused],
    }


def _candidates(
    ctx: StepContext, pools: dict[str, Pool], oid: str, summary: Summary
) -> Iterator[Candidate]:
    """The element's unreferenced source-pool containers and cleartext copies, digests checked."""
    rows = ctx.db.execute(
        """SELECT f.id, f.pool, f.kind, f.relpath, f.type_manager, f.checked, f.corrupt
           FROM temp.pools_file f
           WHERE f.oid = ? AND (f.kind = 'cleartext' OR f.container_id IS NULL)
           ORDER BY f.kind DESC, f.pool, f.relpath""",
        (oid,),
    ).fetchall()
    for file_id, pool, kind, relpath, tm, checked, corrupt_json in rows:
        keys = frozenset(
            (b, n)
            for b, n in ctx.db.execute(
                "SELECT branch, number FROM temp.pools_file_ver WHERE file_id = ?", (file_id,)
            )
        )
        if checked:
            bad = frozenset(_split(k) for k in json.loads(corrupt_json or "[]"))
        else:
            bad = frozenset(_verify(ctx, f"{pools[pool].path}/{relpath}"))
        if bad:
            summary.add("corrupt_found")
        yield Candidate(pool, relpath, kind, tm, keys, bad)


def _split(label: str) -> tuple[str, int]:
    branch, _, number = label.rpartition("/")
    return branch, int(number)


def _verify(ctx: StepContext, name: str) -> list[media.VersionKey]:
    with ctx.media.open(name) as handle:
        return media.corrupt_versions(handle, media.read_header(handle, name))


def _container(
    pools: dict[str, Pool],
    oid: str,
    tm: str,
    c: rebind.ContainerDecision,
    stamp: str,
    occupied: set[tuple[str, str]],
) -> dict[str, Any]:
    """The rebuilt container gets a new name, unique to this run (its stamp is the
    run's clock, so a resumed run names it the same) and never the name of one of
    the element's alternates (which are moved away right after)."""
    m = c.missing
    target = None
    if c.rebuilt:
        parent = m.relpath.rpartition("/")[0]
        ext = media.TM_EXTENSIONS[tm]
        n = 1
        while target is None or (m.pool, target) in occupied:
            suffix = f".{n}" if n > 1 else ""
            name = f"{oid}.c{m.container_id}.{stamp}{suffix}.{ext}"
            target = f"{parent}/{name}" if parent else name
            n += 1
        occupied.add((m.pool, target))
    return {
        "id": m.container_id,
        "pool": m.pool,
        "pool_path": pools[m.pool].path,
        "relpath": m.relpath,
        "match": c.match,
        "source": f"{pools[c.source.pool].path}/{c.source.relpath}" if c.source else None,
        "target": target,
        "expected": len(m.expected),
        "parts": [
            [v.branch, v.number, v.id, f"{pools[s.pool].path}/{s.relpath}", s.type_manager]
            for v in c.rebuilt
            for s in (c.sources[v.key],)
        ],
        "lost": [v.id for v in c.lost],
    }


def _alternate(
    ctx: StepContext, pool: Pool, a: Candidate, stamp: str, taken: dict[str, set[str]]
) -> list[Any]:
    """[path, lost+found path, type manager, versions, corrupt versions].

    A name already in lost+found (left by an earlier fix) is never overwritten:
    the new one gets the run's stamp appended.
    """
    dest = f"{pool.path}/{LOST_FOUND}/{a.relpath}"
    folder, _, name = dest.rpartition("/")
    if folder not in taken:
        taken[folder] = set(ctx.media.listdir(folder)) if ctx.media.exists(folder) else set()
    names = taken[folder]
    if name in names:
        base, n = f"{name}.{stamp}", 1
        name = base
        while name in names:
            n += 1
            name = f"{base}.{n}"
    names.add(name)
    return [
        f"{pool.path}/{a.relpath}",
        f"{folder}/{name}",
        a.type_manager,
        len(a.keys),
        len(a.corrupt),
    ]


def _lost(v: Version) -> list[Any]:
    return [v.id, v.branch, v.number, v.created_at]


def _count(summary: Summary, d: rebind.ElementDecision, applied: bool, alternates: int) -> None:
    add = summary.add
    add("elements_examined")
    add(f"elements_{d.outcome}")
    for c in d.containers:
        add(f"match_{c.match}")
        add("versions_rebuildable", len(c.rebuilt))
    if d.outcome == FIX:
        add("versions_lost_accepted", len(d.lost_accepted))
    else:  # the element is left as is: nothing is lost, the window's verdicts are reported
        add("versions_lost_refused", len(d.lost_refused))
        add("versions_held", len(d.lost_accepted))
    add("alternates_of_examined", alternates)
    if applied:
        add("elements_fixed")
        add("containers_rebuilt", sum(1 for c in d.containers if c.rebuilt))
        add("containers_removed", sum(1 for c in d.containers if not c.rebuilt))
        add("versions_rebuilt", sum(len(c.rebuilt) for c in d.containers))
        add("versions_lost", len(d.lost_accepted))
        add("alternates_moved", alternates)


def verdict(line: dict[str, Any]) -> str:
    """What happens to the element, in words."""
    if line["outcome"] == FIX:
        return "fixed" if line["apply"] else "would be fixed (report only)"
    if line["outcome"] == REFUSED_WINDOW:
        return "refused: version data older than the window would be lost; left as is"
    return (
        "refused in force mode: branch(es) "
        + ", ".join(line["guard"])
        + " would lose all versions above 0; fix it interactively"
    )


def describe(line: dict[str, Any]) -> str:
    """One plan/report line for an element's decision."""
    parts = []
    for c in line["containers"]:
        how = c["match"] if c["match"] != "none" else "nothing to rebuild from"
        src = f" from {c['source']}" if c["source"] else ""
        parts.append(
            f"{c['pool']}:{c['relpath']} missing -> {how}{src}, "
            f"{len(c['parts'])} rebuilt, {len(c['lost'])} lost"
        )
    lost = ""
    if line["lost_accepted"] or line["lost_refused"]:
        lost = f"; lost accepted {len(line['lost_accepted'])}, refused {len(line['lost_refused'])}"
    return f"{line['path']}: " + "; ".join(parts) + lost + f" => {verdict(line)}"


def read_lines(handle: BinaryIO) -> Iterator[dict[str, Any]]:
    for raw in handle:
        try:
            yield json.loads(raw)
        except ValueError as exc:
            raise MediaError(f"the fix's work file is damaged: {exc}") from exc
