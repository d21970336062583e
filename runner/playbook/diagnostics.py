"""A problem found in a playbook, at FILE:LINE:COL with its JSON path and a fix."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Diagnostic:
    file: str
    line: int
    col: int
    message: str
    path: tuple[str | int, ...] = ()
    fix: str | None = None

    @property
    def json_path(self) -> str:
        out = "$"
        for part in self.path:
            out += f"[{part}]" if isinstance(part, int) else f".{part}"
        return out

    def render(self) -> str:
        text = f"{self.file}:{self.line}:{self.col}: {self.message} [{self.json_path}]"
        return text + (f"\n  fix: {self.fix}" if self.fix else "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "col": self.col,
            "message": self.message,
            "path": self.json_path,
            "fix": self.fix,
        }
