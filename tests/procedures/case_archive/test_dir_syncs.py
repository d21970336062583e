"""cases.store and cases.restore make their copies durable with one fsync per directory.

Each copy's data is fsynced before its rename; the directories it lands in are
fsynced once each, before the step commits the catalog rows naming the copies
(a kill before that rolls the rows back and the rerun copies again: see
test_crash.py for the tape write). Fewer fsyncs must not mean a directory left
out.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from runner.engine import media

from .conftest import Site, run_steps

STORE = {
    "id": "store",
    "action": "cases.store",
    "args": {
        "session": "sync check",
        "products": ["radar_a", "radar_b", "satellite", "lightning"],
        "time_from": "2026-03-09T14:00:00Z",
    },
}
RESTORE = {
    "id": "restore",
    "action": "cases.restore",
    "args": {"session": "sync check", "case": "Sync check"},
}


def _record_syncs(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every directory fsync the media store makes, in order."""
    synced: list[Path] = []
    real_sync = media._fsync_dir

    def sync(path: Path) -> None:
        synced.append(Path(path))
        real_sync(path)

    monkeypatch.setattr(media, "_fsync_dir", sync)
    return synced


def test_each_directory_holding_a_copy_is_synced_once(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site.setting("cache_capacity", "100000000")  # room for every product since 14:00
    site.setting("restore_capacity", "100000000")
    events = _record_syncs(monkeypatch)
    result = run_steps(site, tmp_path, [STORE, RESTORE], "--yes")
    assert result.exit_code == 0, result.output
    copies = [
        p
        for part in ("cache", "restore/Sync_check")
        for p in (site.root / part).rglob("*")
        if p.is_file() and not p.is_symlink()
    ]
    assert len(copies) > 20  # enough files that per-file syncs would show
    synced = Counter(path.resolve() for path in events)
    homes = {p.parent.resolve() for p in copies}
    assert homes <= set(synced), "a directory holding a copy was never fsynced"
    assert all(synced[home] == 1 for home in homes), "a directory was fsynced per file"
    assert len(synced) < len(copies)
