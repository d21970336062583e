"""Issue 13 item 4: every refusal of the archive.* actions prints a fix that, followed
literally the way an operator would (run the named step, edit the catalog or the
playbook, put the volume file back), lets the same command run again succeed."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.procedures.archive_volume.conftest import make_site, run_cli, write_playbook

VOL, OTHER, OPEN = "VOL0002", "VOL0001", "VOL0006"

Step = dict[str, Any]


def step(action: str, sid: str = "s", **args: Any) -> Step:
    return {"id": sid, "action": f"archive.{action}", "args": args}


def on(action: str, sid: str = "s", **args: Any) -> Step:
    return step(action, sid, volume=VOL, **args)


MARK = on("mark_affected_locations", "mark")  # the whole volume
PREPARED = [MARK, on("load", "load"), on("load", "copies", copies_of=VOL)]


@dataclass
class Refusal:
    name: str
    steps: list[Step]
    fix: str
    follow: Callable[[Path, Path], None]
    cause: Callable[[Path, Path], None] = lambda root, tmp: None
    code: int = 1
    extra: tuple[str, ...] = ("--yes",)
    allow_loss: Any = "unlimited"
    #: what the fix adds to the command line
    then: tuple[str, ...] = ()


def sql(root: Path, statement: str, *args: Any) -> None:
    db = sqlite3.connect(root / "catalog.sqlite")
    with db:
        db.execute(statement, args)
    db.close()


def run_fix(root: Path, tmp: Path, steps: list[Step]) -> None:
    """The operator runs the steps the fix names, as their own playbook."""
    playbook = write_playbook(tmp / "fix.yaml", steps)
    result = run_cli("run", playbook, "--site", root, "--yes", "--new-run")
    assert result.exit_code == 0, result.output


def edit(tmp: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """The operator edits the refused playbook as the fix says."""
    path = tmp / "cmd.yaml"
    head, body = path.read_text().split("\n", 1)
    doc = json.loads(body)
    change(doc)
    path.write_text(head + "\n" + json.dumps(doc))


def arg(index: int, **changes: Any) -> Callable[[Path, Path], None]:
    def change(doc: dict[str, Any]) -> None:
        for key, value in changes.items():
            if value is None:
                doc["steps"][index]["args"].pop(key, None)
            else:
                doc["steps"][index]["args"][key] = value

    return lambda root, tmp: edit(tmp, change)


def volume_file(root: Path, ref: str = VOL) -> Path:
    return root / "volumes" / f"{ref}.vol"


def damage(ref: str, how: str = "truncate") -> Callable[[Path, Path], None]:
    def cause(root: Path, tmp: Path) -> None:
        shutil.copy(volume_file(root, ref), tmp / f"{ref}.saved")
        if how == "truncate":
            volume_file(root, ref).write_bytes(volume_file(root, ref).read_bytes()[:-100])
        else:  # another volume's file in its place
            shutil.copy(volume_file(root, how), volume_file(root, ref))

    return cause


def restore_file(ref: str) -> Callable[[Path, Path], None]:
    return lambda root, tmp: shutil.copy(tmp / f"{ref}.saved", volume_file(root, ref))


def then(*causes: Callable[[Path, Path], None]) -> Callable[[Path, Path], None]:
    def cause(root: Path, tmp: Path) -> None:
        for one in causes:
            one(root, tmp)

    return cause


def fix_steps(*steps: Step) -> Callable[[Path, Path], None]:
    return lambda root, tmp: run_fix(root, tmp, list(steps))


def _catalog(name: str) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        doc["site"]["catalog"] = name

    return change


def _swap_steps(doc: dict[str, Any]) -> None:
    doc["steps"].reverse()


REFUSALS = [
    Refusal(
        "catalog unreadable",
        [on("mark_affected_locations")],
        "point site.catalog at the archive catalog",
        cause=lambda root, tmp: (
            (root / "other.sqlite").touch(),
            edit(tmp, _catalog("other.sqlite")),
        ),
        follow=lambda root, tmp: edit(tmp, _catalog("catalog.sqlite")),
    ),
    Refusal(
        "volume not in the catalog",
        [step("mark_affected_locations", volume="VOL0099")],
        "check the volume_ref in table volumes",
        follow=arg(0, volume=VOL),
    ),
    Refusal(
        "volume not closed",
        [on("mark_affected_locations")],
        "close the volume in the archive before recovering it",
        cause=lambda root, tmp: sql(
            root, "UPDATE volumes SET status = 'open' WHERE volume_ref = ?", VOL
        ),
        follow=lambda root, tmp: sql(
            root, "UPDATE volumes SET status = 'closed' WHERE volume_ref = ?", VOL
        ),
    ),
    Refusal(
        "volume offline for a scan",
        [on("scan_volume")],
        f"(step archive.load with volume: {VOL})",
        follow=fix_steps(on("load")),
    ),
    Refusal(
        "volume online for marking",
        [on("mark_affected_locations")],
        f"(step archive.unload with volume: {VOL})",
        cause=fix_steps(on("load")),
        follow=fix_steps(on("unload")),
    ),
    Refusal(
        "marking the scanned ranges without a scan",
        [on("mark_affected_locations", ranges="scanned")],
        "run archive.scan_volume first (load the volume for it with archive.load and "
        "unload it after with archive.unload)",
        follow=fix_steps(on("load", "load"), on("scan_volume", "scan"), on("unload", "unload")),
    ),
    Refusal(
        "ranges out of order",
        [on("mark_affected_locations", ranges=[{"begin": 20, "end": 10}])],
        "begin and end are ordinals (integers >= 0) with end >= begin",
        follow=arg(0, ranges=[{"begin": 10, "end": 20}]),
    ),
    Refusal(
        "load naming nothing",
        [step("load", carriers=[])],
        "name what to act on: carriers: [...], volume: REF or copies_of: REF",
        follow=arg(0, volume=VOL),
    ),
    Refusal(
        "load an unknown volume",
        [step("load", volume="VOL0099")],
        "check the volume_ref in table volumes",
        follow=arg(0, volume=VOL),
    ),
    Refusal(
        "load an unknown carrier",
        [step("load", carriers=["CAR001", "CAR999"])],
        "check the carrier ids in table carriers",
        follow=arg(0, carriers=["CAR001"]),
    ),
    Refusal(
        "load a carrier with a damaged volume file",
        [on("load")],
        "restore the volume file, or leave this carrier out",
        cause=damage(OTHER),
        follow=restore_file(OTHER),
    ),
    Refusal(
        "load a carrier with another volume's file in place",
        [on("load")],
        "restore the volume file, or leave this carrier out",
        cause=damage(VOL, OTHER),
        follow=restore_file(VOL),
    ),
    Refusal(
        "scan a damaged volume file",
        [on("scan_volume")],
        "restore the volume file from the repair shop's image",
        cause=then(fix_steps(on("load")), damage(VOL)),
        follow=restore_file(VOL),
    ),
    Refusal(
        "recovery attempt on a damaged volume file",
        [on("recovery_attempt")],
        "restore the volume file from the repair shop's image",
        cause=then(fix_steps(*PREPARED), damage(VOL)),
        follow=restore_file(VOL),
    ),
    Refusal(
        "recovery attempt without the carriers with copies",
        [on("recovery_attempt")],
        f"load them first (archive.load with copies_of: {VOL})",
        cause=fix_steps(MARK, step("unload", carriers=["CAR002", "CAR003"]), on("load", "load")),
        follow=fix_steps(on("load", copies_of=VOL)),
    ),
    Refusal(
        "recovery attempt with a damaged source volume",
        [on("recovery_attempt")],
        "restore volumes/VOL0004.vol or unload carrier CAR002",
        cause=then(fix_steps(*PREPARED), damage("VOL0004")),
        follow=restore_file("VOL0004"),
    ),
    Refusal(
        "clean-up with no open volume",
        [on("clean_up")],
        "open a writable volume in the archive (status 'open')",
        cause=lambda root, tmp: sql(root, "UPDATE volumes SET status = 'closed'"),
        follow=lambda root, tmp: sql(
            root, "UPDATE volumes SET status = 'open' WHERE volume_ref = ?", OPEN
        ),
    ),
    Refusal(
        "clean-up before the recovery attempt",
        [on("clean_up")],
        "run archive.recovery_attempt (batches: all) with the volume and the carriers with "
        "copies loaded (archive.load with volume and copies_of), then unload the volume "
        "(archive.unload)",
        cause=fix_steps(MARK),
        follow=fix_steps(
            on("load", "load", copies_of=VOL),
            on("recovery_attempt", "attempt", batches="all"),
            on("unload", "unload"),
        ),
    ),
    Refusal(
        "modes out of order",
        [on("pre_recovery_assessment", "pre"), on("mark_affected_locations", "mark")],
        "move step 'mark' before step 'pre'",
        follow=lambda root, tmp: edit(tmp, _swap_steps),
    ),
    Refusal(
        "destructive step without confirmation",
        [MARK],
        "review `recover plan`, then re-run with --yes",
        code=3,
        extra=(),
        then=("--yes",),
        follow=lambda root, tmp: None,
    ),
    Refusal(
        "clean-up beyond the loss budget",
        [
            on("mark_affected_locations", "mark"),
            on("load", "load", copies_of=VOL),
            on("recovery_attempt", "attempt", batches="all"),
            on("unload", "unload"),
            on("clean_up", "clean"),
        ],
        "raise safety.allow_loss.objects in the playbook",
        code=3,
        allow_loss=0,
        follow=lambda root, tmp: edit(
            tmp, lambda doc: doc["safety"]["allow_loss"].update(objects="unlimited")
        ),
    ),
]


@pytest.mark.parametrize("refusal", REFUSALS, ids=lambda r: r.name)
def test_the_printed_fix_followed_lets_the_rerun_succeed(tmp_path: Path, refusal: Refusal) -> None:
    root, _scenario = make_site(tmp_path / "site")
    path = write_playbook(tmp_path / "cmd.yaml", refusal.steps, allow_loss=refusal.allow_loss)
    refusal.cause(root, tmp_path)
    result = run_cli("run", path, "--site", root, *refusal.extra)
    assert result.exit_code == refusal.code, result.output
    assert "fix:" in result.output and refusal.fix in result.output, result.output
    refusal.follow(root, tmp_path)
    result = run_cli("run", path, "--site", root, *refusal.extra, *refusal.then)
    assert result.exit_code == 0, result.output
