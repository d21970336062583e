"""Report names a step has claimed, kept until the step commits.

A report is never overwritten: an existing file makes the new one
`name.YYYYMMDD_HHMMSS`. But a step killed after writing its report and before
committing runs again, finds its own report in the way and would leave a
second, suffixed copy: not the state an uninterrupted run ends in. So before
writing a report the step records the name it chose in
`.recover/claims/<run>.<step>.json` (durably); an attempt of the same step of
the same run reuses those names and rewrites its own files. The claim is
released once the step has committed.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path


class ReportClaims:
    def __init__(self, path: Path | None) -> None:
        """`path` None (a dry run) claims nothing durable."""
        self.path = path
        self._claimed: dict[str, list[str]] = {}
        if path is not None and path.exists():
            with contextlib.suppress(ValueError, OSError):
                loaded = json.loads(path.read_text(encoding="utf-8"))
                if isinstance(loaded, dict):
                    self._claimed = {
                        str(k): [str(n) for n in v]
                        for k, v in loaded.items()
                        if isinstance(v, list)
                    }
        self._used: dict[str, int] = {}

    def name_for(self, dest: str, choose: Callable[[], str]) -> str:
        """The name for this step's n-th report to `dest`: the one an earlier
        attempt claimed, or a fresh one from `choose`, claimed now."""
        n = self._used.get(dest, 0)
        self._used[dest] = n + 1
        names = self._claimed.setdefault(dest, [])
        if n < len(names):
            return names[n]
        names.append(choose())
        self._save()
        return names[n]

    def release(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)

    def _save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temp = self.path.with_name(self.path.name + ".tmp")
        with temp.open("w", encoding="utf-8") as handle:
            json.dump(self._claimed, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def release_run(state_dir: Path, run_id: str) -> None:
    """Drop a finished run's claims (one left by a kill right after a commit)."""
    for path in (state_dir / "claims").glob(f"{run_id}.*.json"):
        path.unlink(missing_ok=True)
