"""A reload interrupted inside its swap (between any two of its four renames, by a
fault injected before or after each) is completed by the next run: never a site
that asks the operator to rename files by hand."""

from __future__ import annotations

from typing import Any

import pytest

from runner.engine.media import MediaStore
from tests.procedures.keyed_file.conftest import PLAYBOOK, SiteMaker, digest, recover, steps

DAMAGE = ("eof", "dangling", "missing")  # missing key values: the playbook reloads


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) between two renames: the step's transaction is rolled back."""


@pytest.mark.parametrize("after", [False, True], ids=["before", "after"])
@pytest.mark.parametrize("nth", [1, 2, 3, 4])
def test_a_swap_interrupted_at_any_rename_is_completed_by_the_next_run(
    make_site: SiteMaker, monkeypatch: pytest.MonkeyPatch, nth: int, after: bool
) -> None:
    whole, _ = make_site("whole", records=1500, damage=DAMAGE, seed=5)
    site, _ = make_site("site", records=1500, damage=DAMAGE, seed=5)
    assert recover("run", PLAYBOOK, "--site", whole, "--yes").exit_code == 0
    real_move = MediaStore.move
    calls = {"n": 0}

    def move(self: MediaStore, src: str, dst: str) -> None:
        if src.endswith(".new") or dst.endswith(".bak"):  # the swap's renames only
            calls["n"] += 1
            if calls["n"] == nth and not after:
                raise Interrupted(f"before {src} -> {dst}")
            real_move(self, src, dst)
            if calls["n"] == nth and after:
                raise Interrupted(f"after {src} -> {dst}")
            return
        real_move(self, src, dst)

    monkeypatch.setattr(MediaStore, "move", move)
    first = recover("run", PLAYBOOK, "--site", site, "--yes")
    assert first.exit_code == 130, first.output
    assert calls["n"] == nth
    monkeypatch.setattr(MediaStore, "move", real_move)
    again = recover("run", PLAYBOOK, "--site", site, "--yes")
    assert again.exit_code == 0, again.output
    assert {s["state"] for s in steps(site).values()} <= {"done", "skipped"}
    files: dict[str, Any] = digest(site, under="files")
    assert files == digest(whole, under="files")
    assert not any(name.endswith(".new") for name in files)
