"""A site: one directory holding catalogs, media and the runner's own state.

Every path a playbook names is relative to the site and must stay inside it;
`Site.path` is the single place that enforces this.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from runner.errors import SiteError

STATE_DIR = ".recover"  # journal, lock and run logs; never part of the fingerprint


def safe_relpath(rel: str | os.PathLike[str], *, what: str = "path") -> PurePosixPath:
    """Normalise a site-relative path, refusing absolute paths and `..` escapes."""
    text = os.fspath(rel)
    if not text or "\x00" in text:
        raise SiteError(f"{what} {text!r} is empty or contains a NUL byte")
    posix = PurePosixPath(text.replace("\\", "/"))
    if posix.is_absolute() or (len(text) > 1 and text[1] == ":"):
        raise SiteError(
            f"{what} {text!r} is absolute", fix="give a path relative to the site directory"
        )
    parts: list[str] = []
    for part in posix.parts:
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise SiteError(
                    f"{what} {text!r} leaves the site directory",
                    fix="keep paths inside the site; remove the '..' components",
                )
            parts.pop()
            continue
        parts.append(part)
    if not parts:
        raise SiteError(f"{what} {text!r} names the site directory itself")
    if parts[0] == STATE_DIR:
        raise SiteError(f"{what} {text!r} points into the runner's state directory")
    return PurePosixPath(*parts)


@dataclass
class Site:
    """The site root plus its named locations (catalog, media, ...)."""

    root: Path
    locations: dict[str, str] = field(default_factory=dict)

    def path(self, rel: str | os.PathLike[str], *, what: str = "path") -> Path:
        """Absolute path for a site-relative one; symlinks may not lead outside."""
        clean = safe_relpath(rel, what=what)
        full = self.root / clean
        real_root = self.root.resolve()
        # Resolve the deepest existing ancestor so a symlink cannot smuggle us out.
        probe = full
        while not probe.exists() and probe != self.root:
            probe = probe.parent
        real = probe.resolve()
        if real != real_root and real_root not in real.parents:
            raise SiteError(f"{what} {os.fspath(rel)!r} resolves outside the site via a link")
        return full

    def location(self, name: str, default: str | None = None) -> str:
        """The site-relative path configured for a named location."""
        value = self.locations.get(name, default)
        if value is None:
            raise SiteError(f"the playbook's site section does not name a {name!r} location")
        safe_relpath(value, what=f"site.{name}")
        return value

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    def require_exists(self) -> None:
        if not self.root.is_dir():
            raise SiteError(
                f"site directory {self.root} does not exist",
                fix="pass --site DIR, or generate one with `recover world ...`",
            )
