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


def clean_relpath(rel: str | os.PathLike[str], *, what: str = "path") -> str:
    """`safe_relpath` as a string; an already clean path (the usual case: a step
    touching many files builds them from clean parts) is checked without pathlib."""
    text = os.fspath(rel)
    if (
        text
        and text[0] != "/"
        and "\\" not in text
        and "\x00" not in text
        and (len(text) < 2 or text[1] != ":")
    ):
        parts = text.split("/")
        if parts[0] != STATE_DIR and not any(p in _UNCLEAN for p in parts):
            return text
    return str(safe_relpath(text, what=what))


_UNCLEAN = frozenset(("", ".", ".."))


def safe_relpath(rel: str | os.PathLike[str], *, what: str = "path") -> PurePosixPath:
    """Normalise a site-relative path, refusing absolute paths and `..` escapes."""
    text = os.fspath(rel)
    if not text or "\x00" in text:
        raise SiteError(
            f"{what} {text!r} is empty or contains a NUL byte",
            fix="give a path relative to the site directory, without NUL bytes",
        )
    try:
        os.fsencode(text)
    except UnicodeEncodeError as exc:
        raise SiteError(
            f"{what} {text!r} has a character no file name can hold "
            f"({text[exc.start]!r}, half of a UTF-16 surrogate pair)",
            fix="write the name as plain text; a \\uD800-\\uDFFF escape alone is not a character",
        ) from None
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
        raise SiteError(
            f"{what} {text!r} names the site directory itself",
            fix="name a file inside the site directory",
        )
    if parts[0] == STATE_DIR:
        raise SiteError(
            f"{what} {text!r} points into the runner's state directory",
            fix=f"choose a path outside {STATE_DIR}/ (it holds the journal and the lock)",
        )
    return PurePosixPath(*parts)


@dataclass
class Site:
    """The site root plus its named locations (catalog, media, ...)."""

    root: Path
    locations: dict[str, str] = field(default_factory=dict)
    # Directories already resolved (no link out of the site): a step touching a
    # million files pays one lstat each, not a full resolve().
    _real_dirs: dict[Path, Path] = field(default_factory=dict, repr=False, compare=False)

    def path(self, rel: str | os.PathLike[str], *, what: str = "path") -> Path:
        """Absolute path for a site-relative one; symlinks may not lead outside."""
        full = self.root / clean_relpath(rel, what=what)
        real = self._real_dir(full.parent)
        if full.is_symlink() or not self._inside(real):
            try:
                real = full.resolve()
            except (RuntimeError, OSError) as exc:  # a link loop (Python 3.11: RuntimeError)
                raise SiteError(
                    f"{what} {os.fspath(rel)!r} cannot be resolved: a symbolic link loop",
                    fix=f"replace the link at {os.fspath(rel)!r} (or a directory above it) "
                    "with the real file or directory",
                ) from exc
        if not self._inside(real):
            raise SiteError(
                f"{what} {os.fspath(rel)!r} resolves outside the site via a link",
                fix=f"replace the link at {os.fspath(rel)!r} (or a directory above it) with "
                "the real file or directory inside the site",
            )
        return full

    def _inside(self, real: Path) -> bool:
        """`real` (resolved) is the site root or below it; compared as strings, since
        walking `Path.parents` costs more than the rest of a lookup."""
        real_root = self._real_dirs.get(self.root)
        if real_root is None:
            real_root = self._real_dirs[self.root] = self.root.resolve()
        text, root = str(real), str(real_root)
        return text == root or text.startswith(root if root.endswith("/") else root + "/")

    def _real_dir(self, directory: Path) -> Path:
        """The real path of a directory (or of its deepest existing ancestor)."""
        known = self._real_dirs.get(directory)
        if known is not None:
            return known
        probe = directory
        while not probe.exists() and probe != self.root and probe != probe.parent:
            probe = probe.parent
        try:
            real = probe.resolve()
        except (RuntimeError, OSError) as exc:
            raise SiteError(
                f"{directory} cannot be resolved: a symbolic link loop",
                fix="replace the looping link with the real directory",
            ) from exc
        if probe == directory and self._inside(real):
            self._real_dirs[directory] = real
        return real

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
