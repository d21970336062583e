"""`CaseAction`, the base of every cases.* action: the catalog it attaches, the
checks every action needs (catalog tables, settings, the tape access window for
tape steps), the cache lock, and the path and copy helpers the actions share."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from datetime import UTC
from typing import Any

from runner import clock
from runner.clock import parse_moment
from runner.contract import Action, Check, StepContext, catalog_shape_checks, tables_check
from runner.errors import SiteError, UsageError
from runner.procedures.case_archive import catalog
from runner.procedures.case_archive.catalog import Settings
from runner.procedures.case_archive.tape_window import in_window, parse_window
from runner.site import Site, safe_relpath

COPY_CHUNK = 1 << 16

#: the confirm key that acknowledges the URGENT nearly-full-tape banner
CONFIRM_TAPE_FULL_ACK = "tape_full_ack"


def urgent_banner(label: str, percent: float) -> str:
    """The URGENT message: which tape, how full, what to do, how to acknowledge."""
    return (
        f"URGENT: tape {label} is {percent:.1f}% full: replace it very soon (put a newly "
        "initialised tape in the drive and accept it with cases.new_tape). Acknowledge "
        f"this message by running again with --confirm {CONFIRM_TAPE_FULL_ACK} "
        "(or safety.confirm)"
    )


def check(name: str, ok: bool, detail: str = "", fix: str | None = None) -> Check:
    """A Check whose detail (written for the failure) shows only when it fails."""
    return Check(name, ok, "" if ok else detail, fix)


def case_directory(restore_dir: str, name: str) -> str:
    """The case directory: the case name with spaces replaced by underscores."""
    return f"{restore_dir}/{name.replace(' ', '_')}"


def clean_path(text: str, what: str) -> str | None:
    """An error message if `text` is not a normalised relative path, else None."""
    try:
        clean = str(safe_relpath(text, what=what))
    except SiteError as exc:
        return exc.message
    if clean != text:
        return f"{what} {text!r} is not normalised"
    return None


def moment_arg(value: str | None) -> str | None:
    """An ISO date-time argument in the catalog's time format (UTC)."""
    if value is None:
        return None
    return catalog.stamp(parse_moment(value, repr(value)))


def window_check(window: str, why: str = "") -> Check:
    """The tape access window, against the real current time as the tape step
    starts (runner.clock.now), not the run's recorded clock: a resumed run keeps
    its start clock for the timestamps it writes, and a step refused outside the
    window must pass when run again inside it."""
    moment = clock.now()
    return check(
        "inside the tape access window",
        in_window(window, moment),
        f"{why}it is {moment.astimezone(UTC):%H:%M} UTC; tapes may be used only {window} UTC "
        "(the drive is reserved for the system backup otherwise)",
        fix=f"run again inside the tape access window ({window} UTC)",
    )


def copy_verified(
    ctx: StepContext,
    src: str,
    dst: str,
    size: int,
    digest: str,
    mismatch: Callable[[int], Exception],
) -> None:
    """Copy a media file streaming, checking it against the catalog's size and sha256
    on the way; on a mismatch raise `mismatch(bytes seen)` before the copy lands
    (the writer then leaves nothing behind)."""
    sha, seen = hashlib.sha256(), 0
    with ctx.media.open(src) as source, ctx.media.writer(dst, source=src) as target:
        while chunk := source.read(COPY_CHUNK):
            sha.update(chunk)
            seen += len(chunk)
            target.write(chunk)
        if seen != size or sha.hexdigest() != digest:
            raise mismatch(seen)


class CaseAction(Action):
    """Base of the cases.* actions."""

    #: uses the tape drive: refused outside the tape access window
    tape_access: bool = False

    def databases(self, site: Site) -> dict[str, str]:
        return {"catalog": site.location("catalog", "catalog.sqlite")}

    def preflight(self, ctx: StepContext) -> Iterator[Check]:
        """The catalog's tables, columns and value types, then its settings: what
        no earlier step provides, checked before a run's first step."""
        shape = catalog_shape_checks(
            ctx.db,
            catalog.DDL,
            what="the case-archive catalog",
            fix="point site.catalog at the case-archive catalog (see docs/case_archive.md)",
        )
        yield from shape
        if all(c.ok for c in shape):
            yield from self._settings_and_window(ctx)

    def shared_checks(self, ctx: StepContext) -> Iterator[Check]:
        """Catalog, settings and, for tape actions, the access window: the
        actions' own checks read the catalog and its settings, so they wait
        for these (runner.contract.Action.check)."""
        tables = tables_check(
            ctx.db,
            catalog.TABLES,
            "catalog has the case-archive tables",
            fix="point site.catalog at the case-archive catalog (see docs/case_archive.md)",
        )
        yield tables
        if tables.ok:
            yield from self._settings_and_window(ctx)

    def _settings_and_window(self, ctx: StepContext) -> Iterator[Check]:
        """The settings, then, for tape actions, the access window: outside it a
        tape step would be refused after the steps before it (a store) had
        changed the site, so a run checks it before its first step too."""
        settings = Settings(ctx.db)
        problems = settings_problems(settings)
        yield check(
            "settings are valid",
            not problems,
            "; ".join(problems),
            fix="correct the settings table (see docs/case_archive.md)",
        )
        if not problems and self.tape_access:
            yield window_check(settings.text("tape_window"))

    def urgent_pending(self, ctx: StepContext) -> None:
        """Every cases step shows an unacknowledged URGENT banner again (so it stays
        in `recover status`), or clears it when the run carries the acknowledgement
        key. A banner raised in this same run is not acknowledged by it: the key
        must come after the banner has been seen."""
        raw = Settings(ctx.db).text("tape_urgent")
        if not raw:
            return
        try:
            banner = json.loads(raw)
        except ValueError:
            banner = {"text": raw, "run": None}
        if ctx.confirmed(CONFIRM_TAPE_FULL_ACK) and banner.get("run") != ctx.run_id:
            catalog.set_setting(ctx.db, "tape_urgent", "")
            ctx.changed("settings", "tape_urgent acknowledged")
            ctx.note(f"acknowledged ({CONFIRM_TAPE_FULL_ACK}): {banner.get('text')}")
        else:
            ctx.warn(str(banner.get("text")))

    def lock_check(self, ctx: StepContext) -> Check:
        """The cache lock keeps copy-to-cache and write-to-tape apart."""
        holder = lock_holder(ctx)
        ours = (
            holder is not None
            and holder.get("run") == ctx.run_id
            and (holder.get("step") == ctx.step_id)
        )
        lock = Settings(ctx.db).text("lock_file")
        detail = ""
        if holder is not None and not ours:
            detail = (
                f"{lock} is held by {holder.get('holder', '?')} (run {holder.get('run', '?')}, "
                f"step {holder.get('step', '?')}) since {holder.get('since', '?')}"
            )
        return check(
            "cache lock is free",
            holder is None or ours,
            detail,
            fix=f"wait for that job to finish; if no store or tape job is running, remove {lock}",
        )

    def take_lock(self, ctx: StepContext, holder: str) -> None:
        body = {"holder": holder, "run": ctx.run_id, "step": ctx.step_id, "since": ctx.now}
        ctx.media.write_bytes(
            Settings(ctx.db).text("lock_file"), json.dumps(body, default=str).encode() + b"\n"
        )

    def release_lock(self, ctx: StepContext) -> None:
        ctx.media.remove(Settings(ctx.db).text("lock_file"))


def lock_holder(ctx: StepContext) -> dict[str, Any] | None:
    lock = Settings(ctx.db).text("lock_file")
    if not ctx.media.exists(lock):
        return None
    try:
        value = json.loads(ctx.media.read_bytes(lock) or b"{}")
    except ValueError:
        value = {"holder": "unknown (unreadable lock file)"}
    return value if isinstance(value, dict) else {"holder": str(value)}


def settings_problems(settings: Settings) -> list[str]:
    problems = []
    for key in ("ingest_dir", "cache_dir", "restore_dir", "tape_dir", "lock_file"):
        message = clean_path(settings.text(key), key)
        if message:
            problems.append(message)
    for dirs in settings.common_dirs():
        message = clean_path(dirs, "common data directory")
        if message:
            problems.append(message)
    for area in ("cache", "restore"):
        try:
            capacity = settings.number(f"{area}_capacity")
            least = settings.number(f"{area}_min_capacity")
        except ValueError:
            problems.append(f"{area}_capacity and {area}_min_capacity must be whole numbers")
            continue
        if capacity < least:
            problems.append(f"{area}_capacity {capacity:,} is below the minimum {least:,} bytes")
    try:
        parse_window(settings.text("tape_window"))
    except UsageError as exc:
        problems.append(exc.message)
    if not settings.text("cache_warn_percent").isdigit():
        problems.append("cache_warn_percent must be a whole number")
    return problems
