"""Issue 13 item 4: every refusal of the cases.* actions prints a fix that, followed
literally the way an operator would (edit the catalog, put a tape file back, run the
named action, edit the playbook), lets the same command run again succeed."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import Result

from .conftest import Site, playbook, recover

OLD, CURRENT, NEXT = "Archive_pool_1_2", "Archive_pool_2_2", "Archive_pool_3_2"

Step = dict[str, Any]


def step(action: str, sid: str = "s", **args: Any) -> Step:
    return {"id": sid, "action": f"cases.{action}", "args": args}


WRITE = step("write_tape", "write")
STORE = step(
    "store", "store", session="new one", products=["lightning"], time_from="2026-03-09T20:00:00Z"
)
RESTORE = step("restore", "restore", session="hail case", case="hail")
RESTORE_OLD = step("restore", "restore", session="storm 0309", case="storm")


@dataclass
class Refusal:
    """One refusal: how to cause it, the command, the fix printed, and the fix followed."""

    name: str
    steps: list[Step]
    fix: str
    follow: Callable[[Site, Path], None]
    cause: Callable[[Site, Path], None] = lambda site, tmp: None
    code: int = 1
    extra: tuple[str, ...] = ("--yes",)
    allow_loss: dict[str, int] = field(default_factory=dict)
    #: what the fix adds to the command line (a flag or confirm key it names)
    then: tuple[str, ...] = ()


def tape(site: Site, label: str) -> Path:
    return site.root / "tapes" / f"{label}.tape"


def run_fix(site: Site, tmp: Path, steps: list[Step], *extra: str, **kw: Any) -> None:
    """The operator runs the action the fix names, as its own playbook."""
    result = recover(
        "run", playbook(tmp, steps, name="fix", **kw), "--site", site.root, "--yes", *extra
    )
    assert result.exit_code == 0, result.output


def edit_command(tmp: Path, change: Callable[[list[Step]], None]) -> None:
    """The operator edits the refused playbook as the fix says."""
    path = tmp / "cmd.yaml"
    doc = yaml.safe_load(path.read_text())
    change(doc["steps"])
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def backup_tape(site: Site, tmp: Path, label: str) -> None:
    shutil.copy(tape(site, label), tmp / f"{label}.tape.saved")


def put_back(site: Site, tmp: Path, label: str) -> None:
    shutil.copy(tmp / f"{label}.tape.saved", tape(site, label))


def _arg(index: int, **changes: Any) -> Callable[[list[Step]], None]:
    def change(steps: list[Step]) -> None:
        for key, value in changes.items():
            if value is None:
                steps[index]["args"].pop(key, None)
            else:
                steps[index]["args"][key] = value

    return change


def _ingest_outside(site: Site, tmp: Path) -> None:
    site.execute(
        "UPDATE products SET relpath = '../' || relpath WHERE product = 'lightning' AND "
        "time = '2026-03-09T21:00:00Z'"
    )


def _ingest_changed(site: Site, tmp: Path) -> None:
    (rel,) = site.query(
        "SELECT relpath FROM products WHERE product = 'lightning' AND time = '2026-03-09T21:00:00Z'"
    )[0]
    (site.root / "ingest" / rel).write_bytes(b"changed after ingest")


def _reingest(site: Site, tmp: Path) -> None:
    import hashlib

    (rel,) = site.query(
        "SELECT relpath FROM products WHERE product = 'lightning' AND time = '2026-03-09T21:00:00Z'"
    )[0]
    data = (site.root / "ingest" / rel).read_bytes()
    site.execute(
        "UPDATE products SET size = ?, digest = ? WHERE relpath = ?",
        len(data),
        hashlib.sha256(data).hexdigest(),
        rel,
    )


def _vanished(site: Site, tmp: Path) -> None:
    (rel,) = site.query(
        "SELECT relpath FROM products WHERE product = 'lightning' AND time = '2026-03-09T21:00:00Z'"
    )[0]
    (site.root / "ingest" / rel).unlink()


def _cached(site: Site) -> Path:
    (rel,) = site.query("SELECT relpath FROM files WHERE location = 'cache' ORDER BY relpath")[0]
    return site.root / "cache" / rel


def _two_tapes(site: Site, tmp: Path) -> None:
    """A session whose radar_a files are on the old tape, the rest on the current one."""
    (old_backup,) = site.query("SELECT id FROM backups WHERE tape = ? LIMIT 1", OLD)[0]
    site.execute(
        """UPDATE files SET backup_id = ? WHERE location = 'tape' AND id IN (
               SELECT sf.file_id FROM session_files sf JOIN store_sessions s
               ON s.id = sf.session_id WHERE s.name = 'hail case') AND relpath LIKE 'radar_a/%'""",
        old_backup,
    )


def raise_allow_loss(tmp: Path, unit: str, value: int) -> None:
    path = tmp / "cmd.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["safety"]["allow_loss"][unit] = value
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


REINIT_OLD = [step("load_tape", "load", label=OLD), step("reinit_tape", label=OLD)]

REFUSALS = [
    Refusal(
        "destructive step without confirmation",
        REINIT_OLD,
        "review `recover plan`, then re-run with --yes",
        code=3,
        extra=(),
        then=("--yes",),
        allow_loss={"files": 1000},
        follow=lambda site, tmp: None,
    ),
    Refusal(
        "re-initialising beyond the loss budget",
        REINIT_OLD,
        "raise safety.allow_loss.files in the playbook",
        code=3,
        follow=lambda site, tmp: raise_allow_loss(tmp, "files", 12),
    ),
    Refusal(
        "outside the tape access window",
        [WRITE],
        "run again inside the tape access window (18:00-06:00 UTC)",
        cause=lambda site, tmp: _at("2026-03-10T12:00:00+00:00"),
        follow=lambda site, tmp: _at("2026-03-10T19:30:00+00:00"),
    ),
    Refusal(
        "catalog without the case-archive tables",
        [WRITE],
        "point site.catalog at the case-archive catalog",
        cause=lambda site, tmp: edit_site(tmp, "other.sqlite"),
        follow=lambda site, tmp: edit_site(tmp, "catalog.sqlite"),
    ),
    Refusal(
        "settings below their minimum",
        [WRITE],
        "correct the settings table",
        cause=lambda site, tmp: site.setting("restore_capacity", "5000"),
        follow=lambda site, tmp: site.setting("restore_capacity", "6000"),
    ),
    Refusal(
        "cache lock held",
        [WRITE],
        "if no store or tape job is running, remove cache.lock",
        cause=lambda site, tmp: (site.root / "cache.lock").write_text('{"holder": "x"}'),
        follow=lambda site, tmp: (site.root / "cache.lock").unlink(),
    ),
    Refusal(
        "current tape file missing",
        [WRITE],
        "put the tape back in the library (restore its file)",
        cause=lambda site, tmp: (backup_tape(site, tmp, CURRENT), tape(site, CURRENT).unlink()),
        follow=lambda site, tmp: put_back(site, tmp, CURRENT),
    ),
    Refusal(
        "current tape file holds another tape",
        [WRITE],
        "the tape file holds another tape; put the right one back",
        cause=lambda site, tmp: (
            backup_tape(site, tmp, CURRENT),
            shutil.copy(tape(site, OLD), tape(site, CURRENT)),
        ),
        follow=lambda site, tmp: put_back(site, tmp, CURRENT),
    ),
    Refusal(
        "current tape file torn (no header)",
        [WRITE],
        "put the right tape back in the library (restore its file from a sound copy)",
        cause=lambda site, tmp: (
            backup_tape(site, tmp, CURRENT),
            tape(site, CURRENT).write_bytes(b"torn"),
        ),
        follow=lambda site, tmp: put_back(site, tmp, CURRENT),
    ),
    Refusal(
        "current tape truncated",
        [WRITE],
        "retire it (cases.new_tape)",
        cause=lambda site, tmp: tape(site, CURRENT).write_bytes(
            tape(site, CURRENT).read_bytes()[:-100]
        ),
        follow=lambda site, tmp: run_fix(site, tmp, [step("new_tape")]),
    ),
    Refusal(
        "a cached file no longer matching the catalog",
        [WRITE],
        "store the file again from the ingest disk",
        cause=lambda site, tmp: _cached(site).write_bytes(b"bit rot"),
        follow=lambda site, tmp: shutil.copy(
            site.root / "ingest" / _cached(site).relative_to(site.root / "cache"), _cached(site)
        ),
    ),
    Refusal(
        "no current tape",
        [WRITE],
        "initialise one with cases.new_tape",
        cause=lambda site, tmp: site.execute("UPDATE tapes SET state = 'old'"),
        follow=lambda site, tmp: run_fix(site, tmp, [step("new_tape")]),
    ),
    Refusal(
        "current tape not loaded",
        [WRITE],
        f"cases.load_tape with label {CURRENT}",
        cause=lambda site, tmp: run_fix(site, tmp, [step("load_tape", label=OLD)]),
        follow=lambda site, tmp: run_fix(site, tmp, [step("load_tape", label=CURRENT)]),
    ),
    Refusal(
        "current tape write-protected",
        [WRITE],
        "accept a new current tape with cases.new_tape",
        cause=lambda site, tmp: site.execute("UPDATE tapes SET write_protected = 1"),
        follow=lambda site, tmp: run_fix(site, tmp, [step("new_tape")]),
    ),
    Refusal(
        "the cache does not fit on the tape",
        [WRITE],
        "accept a new current tape (cases.new_tape), then write again",
        cause=lambda site, tmp: site.execute(
            "UPDATE tapes SET capacity = used + 100 WHERE label = ?", CURRENT
        ),
        follow=lambda site, tmp: run_fix(site, tmp, [step("new_tape", capacity=10_000_000)]),
    ),
    Refusal(
        "load an unknown tape",
        [step("load_tape", label="Archive_pool_9_2")],
        "name a tape from the tapes table",
        follow=lambda site, tmp: edit_command(tmp, _arg(0, label=OLD)),
    ),
    Refusal(
        "new tape with a label off the pattern",
        [step("new_tape", label="Other_9_1")],
        "label store tapes Archive_pool_<n>_2, or leave label out",
        follow=lambda site, tmp: edit_command(tmp, _arg(0, label=None)),
    ),
    Refusal(
        "new tape over a tape with data",
        [step("new_tape", label=OLD)],
        f"or use a new label ({NEXT} is free)",
        follow=lambda site, tmp: edit_command(tmp, _arg(0, label=NEXT)),
    ),
    Refusal(
        "re-initialise the current tape",
        [step("load_tape", "load", label=CURRENT), step("reinit_tape", label=CURRENT)],
        "retire it first: cases.new_tape makes a new current tape and this one old, "
        "then load it (cases.load_tape)",
        follow=lambda site, tmp: run_fix(
            site, tmp, [step("new_tape", "new"), step("load_tape", label=CURRENT)]
        ),
        allow_loss={"files": 1000},
    ),
    Refusal(
        "re-initialise a tape not loaded",
        [step("reinit_tape", label=OLD)],
        f"load it first: cases.load_tape with label {OLD}",
        follow=lambda site, tmp: run_fix(site, tmp, [step("load_tape", label=OLD)]),
        allow_loss={"files": 1000},
    ),
    Refusal(
        "restore an unknown session",
        [step("restore", session="no such", case="c")],
        "name a session from the store_sessions table",
        follow=lambda site, tmp: edit_command(tmp, _arg(0, session="hail case")),
    ),
    Refusal(
        "restore selecting nothing",
        [step("restore", session="hail case", case="c", products=["lightning"])],
        "widen the products or the time range",
        follow=lambda site, tmp: edit_command(tmp, _arg(0, products=None)),
    ),
    Refusal(
        "restore into an existing case",
        [step("restore", session="hail case", case="review 0309")],
        "or delete the case first (cases.delete_case)",
        cause=lambda site, tmp: site.execute("UPDATE cases SET in_use = 0"),
        follow=lambda site, tmp: run_fix(site, tmp, [step("delete_case", case="review 0309")]),
    ),
    Refusal(
        "common data outside the site",
        [RESTORE],
        "set common_dirs to directories inside the site",
        cause=lambda site, tmp: (
            (site.root / "escape").symlink_to(tmp),
            site.setting("common_dirs", '["common/maps", "escape"]'),
        ),
        follow=lambda site, tmp: site.setting("common_dirs", '["common/maps"]'),
    ),
    Refusal(
        "restore disk full",
        [RESTORE],
        "delete cases no longer needed (cases.delete_case)",
        cause=lambda site, tmp: (
            site.setting("restore_capacity", "7000"),
            site.execute("UPDATE cases SET in_use = 0"),
        ),
        follow=lambda site, tmp: run_fix(site, tmp, [step("delete_case", case="review 0309")]),
    ),
    Refusal(
        "restore spanning two tapes",
        [RESTORE],
        "restore it in parts (products or time range), loading each tape",
        cause=_two_tapes,
        follow=lambda site, tmp: edit_command(tmp, _arg(0, products=["satellite"])),
    ),
    Refusal(
        "restore from an old tape not loaded",
        [RESTORE_OLD],
        f"load tape {OLD} (cases.load_tape label: {OLD})",
        follow=lambda site, tmp: run_fix(site, tmp, [step("load_tape", label=OLD)]),
    ),
    Refusal(
        "delete an unknown case",
        [step("delete_case", case="no such")],
        "name a case from the cases table",
        follow=lambda site, tmp: edit_command(tmp, _arg(0, case="review 0309")),
        cause=lambda site, tmp: site.execute("UPDATE cases SET in_use = 0"),
    ),
    Refusal(
        "delete a case in use",
        [step("delete_case", case="review 0309")],
        "close the case in the display first (closing it sets cases.in_use to 0)",
        follow=lambda site, tmp: site.execute(
            "UPDATE cases SET in_use = 0 WHERE name = 'review 0309'"
        ),
    ),
    Refusal(
        "store into an existing one-time session",
        [{**STORE, "args": {**STORE["args"], "session": "hail case"}}],
        "choose a new session name",
        follow=lambda site, tmp: edit_command(tmp, _arg(0, session="hail case 2")),
    ),
    Refusal(
        "store unknown products",
        [{**STORE, "args": {**STORE["args"], "products": ["lightning", "sonar"]}}],
        "name products from the catalog's products table",
        follow=lambda site, tmp: edit_command(tmp, _arg(0, products=["lightning"])),
    ),
    Refusal(
        "store an ingest path leaving the ingest directory",
        [STORE],
        "correct the products table: paths are relative to the ingest directory",
        cause=_ingest_outside,
        follow=lambda site, tmp: site.execute(
            "UPDATE products SET relpath = substr(relpath, 4) WHERE relpath LIKE '../%'"
        ),
    ),
    Refusal(
        "store vanished ingest files",
        [STORE],
        "remove the vanished files from the products table",
        cause=_vanished,
        follow=lambda site, tmp: site.execute(
            "DELETE FROM products WHERE product = 'lightning' AND time = '2026-03-09T21:00:00Z'"
        ),
    ),
    Refusal(
        "store with the cache full",
        [STORE],
        "write the cache to tape first (cases.write_tape)",
        cause=lambda site, tmp: site.setting("cache_capacity", "6000"),
        follow=lambda site, tmp: run_fix(site, tmp, [WRITE]),
    ),
    Refusal(
        "store an ingest file changed after ingest",
        [STORE],
        "re-ingest it or fix the products table",
        cause=_ingest_changed,
        follow=_reingest,
    ),
]


_NOW: list[str] = []


def _at(moment: str) -> None:
    _NOW.append(moment)


def edit_site(tmp: Path, catalog: str) -> None:
    path = tmp / "cmd.yaml"
    if not path.exists():  # before the command is written: the cause
        _SITE_CATALOG.append(catalog)
        return
    doc = yaml.safe_load(path.read_text())
    doc["site"]["catalog"] = catalog
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


_SITE_CATALOG: list[str] = []


@pytest.mark.parametrize("refusal", REFUSALS, ids=lambda r: r.name)
def test_the_printed_fix_followed_lets_the_rerun_succeed(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refusal: Refusal
) -> None:
    _NOW.clear()
    _SITE_CATALOG.clear()
    (site.root / "other.sqlite").touch()
    refusal.cause(site, tmp_path)
    if _NOW:
        monkeypatch.setenv("RECOVER_NOW", _NOW.pop())
    path = playbook(tmp_path, refusal.steps, allow_loss=refusal.allow_loss, name="cmd")
    if _SITE_CATALOG:
        edit_site(tmp_path, _SITE_CATALOG.pop())

    def command(*then: str) -> Result:
        return recover("run", path, "--site", site.root, *refusal.extra, *then)

    result = command()
    assert result.exit_code == refusal.code, result.output
    assert "fix:" in result.output and refusal.fix in result.output, result.output
    refusal.follow(site, tmp_path)
    if _NOW:
        monkeypatch.setenv("RECOVER_NOW", _NOW.pop())
    result = command(*refusal.then)
    assert result.exit_code == 0, result.output
    runs = json.loads(recover("status", "--site", site.root, "--json").output)["runs"]
    assert runs[0]["state"] == "done", runs[0]
