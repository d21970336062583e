"""The expected outcome written to scenario.json: what the shipped playbook
(store the squall line, write the cache to tape, restore it as a case) and the
rule tests must find on a generated site. It is computed from the generator's
own construction (which files it put where), not by running the actions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from runner.procedures.case_archive import media

if TYPE_CHECKING:
    from runner.procedures.case_archive.world.generator import File, Options, Session

#: the shipped playbook's defaults: session, products, first and last hour, case
SQUALL = ("squall line", ("radar_a", "lightning"), 10, 15)
CASE = "Squall line review"
CASE_DIRECTORY = "restore/Squall_line_review"


@dataclass(frozen=True)
class ShippedRun:
    """What the shipped playbook stores, writes to tape and restores."""

    squall: Session
    new: list[File]  # not stored yet: copied to the cache
    shared: list[File]  # already on the current tape through the hail case
    written: list[File]  # the tape write: what was in the cache, then the new files
    tape_used: int  # the current tape's committed bytes after the write


def shipped_run(squall: Session, hail: Session, in_cache: list[File], label: str) -> ShippedRun:
    """The shipped playbook on a site whose current tape `label` holds the hail case."""
    new = [f for f in squall.files if f not in hail.files]
    shared = [f for f in squall.files if f in hail.files]
    written = in_cache + new
    tape_used = (
        media.session_size(iter([(f.relpath, len(f.data)) for f in hail.files]))
        + media.session_size(iter([(f.relpath, len(f.data)) for f in written]))
        + len(media.header_bytes(label, 0))
    )
    return ShippedRun(squall, new, shared, written, tape_used)


def expected(
    *,
    now: datetime,
    options: Options,
    products: tuple[str, ...],
    tapes: tuple[str, str],
    capacity: int,
    old: Session,
    hail: Session,
    front: Session,
    in_cache: list[File],
    corrupt: File,
    case_in_use: str,
    run: ShippedRun,
) -> dict[str, Any]:
    """scenario.json; `tapes` is (old label, current label)."""
    old_tape, current_tape = tapes
    squall = run.squall
    return {
        "now": now.isoformat(),
        "seed": options.seed,
        "products": list(products),
        "tapes": {
            "old": old_tape,
            "current": current_tape,
            "current_capacity": capacity,
        },
        "sessions": {
            old.name: {"tape": old_tape, "files": len(old.files)},
            hail.name: {"tape": current_tape, "files": len(hail.files)},
            front.name: {
                "files": len(front.files),
                "in_cache": len(in_cache),
                "shared_with": hail.name,
            },
        },
        "corrupt": {"session": hail.name, "file": corrupt.relpath, "tape": current_tape},
        "case_in_use": case_in_use,
        "cache_files": len(in_cache),
        "playbook": {
            "session": squall.name,
            "products": list(squall.products),
            "time_from": squall.time_from,
            "time_to": squall.time_to,
            "case": CASE,
            "directory": CASE_DIRECTORY,
            "store": {
                "files_copied": len(run.new),
                "files_shared": len(run.shared),
                "session_files": len(squall.files),
            },
            "write": {
                "files": len(run.written),
                "bytes": sum(len(f.data) for f in run.written),
                "tape_used": run.tape_used,
                "tape_percent": round(100 * run.tape_used / capacity, 1),
            },
            "restore": {
                "files": len(squall.files),
                "bytes": sum(len(f.data) for f in squall.files),
                "from_tape": len(squall.files),
                "from_cache": 0,
            },
        },
    }
