"""The damaged database the restore keeps is never overwritten, even by a second
restore at the same second (the run's clock pinned, or a quick re-run)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from tests.procedures.roll_forward.conftest import run_playbook


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_second_restore_at_the_same_second_keeps_the_first_damaged_copy(
    make_site: Callable[..., Path],
) -> None:
    site = make_site()
    first = run_playbook(site)
    assert first.exit_code == 0, first.output
    kept = {p: _digest(p) for p in (site / "damaged").glob("*.sqlite")}
    assert len(kept) == 3
    again = run_playbook(site, "error_limit=1")  # other params: a new run, the same clock
    assert again.exit_code == 0, again.output
    for path, digest in kept.items():  # the damaged state, still there
        assert _digest(path) == digest
    second = sorted(set((site / "damaged").glob("*.sqlite")) - set(kept))
    assert [p.name.split(".")[0] for p in second] == sorted(p.name.split(".")[0] for p in kept)
    assert all(p.name.endswith("_2.sqlite") for p in second)
    assert {_digest(p) for p in second}.isdisjoint(kept.values())
