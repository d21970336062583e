"""The Jinja environment that renders report templates.

Shipped templates live in templates/<procedure>/; a site may override any of
them with its own `templates/` directory and still extend the shipped one as
`default:<name>` (datasette's pattern). Templates run in the immutable sandbox, because
a site's templates are as untrusted as its playbooks (they may not even
change the lists and dicts they are given), and with StrictUndefined
so a typo fails loudly instead of printing an empty cell.
"""

from __future__ import annotations

import csv
import io
import os
import stat
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PrefixLoader,
    StrictUndefined,
    TemplateError,
    TemplateNotFound,
)
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from runner.engine.media import MediaStore
from runner.errors import SiteError, StepFailed
from runner.sandbox import BoundedImmutableSandbox
from runner.site import safe_relpath


def csvrow(values: Iterable[Any]) -> str:
    """One CSV line, quoted as spreadsheets expect (no trailing newline).

    A cell holding a line break is quoted like any other special cell, so a
    name with a newline in it stays one cell of one record.
    """
    cells = ["" if v is None else v for v in values]
    buffer = io.StringIO()
    # csv quotes a cell that contains the line terminator; with "" as the
    # terminator it would let \n and \r through unquoted.
    csv.writer(buffer, lineterminator="\r\n").writerow(cells)
    return buffer.getvalue()[:-2]


def make_environment(
    site_templates: Path | None, shipped_folders: Sequence[Path]
) -> SandboxedEnvironment:
    """The report environment: the site's own templates first, then every
    procedure's shipped folder; `default:NAME` always means the shipped one."""
    shipped = FileSystemLoader([str(folder) for folder in shipped_folders])
    loaders: list[Any] = []
    if site_templates is not None and site_templates.is_dir():
        loaders.append(SiteTemplateLoader(site_templates))
    loaders += [shipped, PrefixLoader({"default": shipped}, delimiter=":")]
    env = BoundedImmutableSandbox(
        loader=ChoiceLoader(loaders),
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["csvrow"] = csvrow
    return env


class SiteTemplateLoader(FileSystemLoader):
    """A site's own templates, which must be regular files inside the site.

    The site is untrusted: a template that is a link to a file elsewhere would
    put that file's content into a report, and a FIFO would block the run.
    """

    def __init__(self, folder: Path) -> None:
        super().__init__(str(folder))
        self.site_root = os.path.realpath(folder.parent)

    def get_source(
        self, environment: Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        for searchpath in self.searchpath:
            candidate = os.path.join(searchpath, *template.split("/"))
            if not os.path.lexists(candidate):
                continue
            real = os.path.realpath(candidate)
            if not real.startswith(self.site_root + os.sep):
                raise SiteError(
                    f"site template {template} is a link that leaves the site ({real})",
                    fix=f"replace templates/{template} with a regular file inside the site",
                )
            if not stat.S_ISREG(os.stat(real).st_mode):
                raise SiteError(
                    f"site template {template} is not a regular file",
                    fix=f"replace templates/{template} with a regular file",
                )
        return super().get_source(environment, template)


def free_name(media: MediaStore, dest: str, now: datetime) -> str:
    """`dest`, or `dest.YYYYMMDD_HHMMSS` (then `_2`, `_3`...) if it exists."""
    clean = str(safe_relpath(dest, what="report path"))
    if not media.exists(clean):
        return clean
    stamped = f"{clean}.{now.strftime('%Y%m%d_%H%M%S')}"
    candidate, n = stamped, 1
    while media.exists(candidate):
        n += 1
        candidate = f"{stamped}_{n}"
    return candidate


def render_report(
    env: SandboxedEnvironment,
    media: MediaStore,
    template: str,
    target: str,
    context: Mapping[str, Any],
) -> str:
    """Stream a template into the site file `target` (a name from free_name)."""
    try:
        compiled = env.get_template(template)
        with media.writer(target) as handle:
            for chunk in compiled.generate(**context):
                handle.write(chunk.encode("utf-8"))
    except TemplateNotFound as exc:
        raise StepFailed(
            f"report template {exc.name} not found (looked in the site's templates/ "
            "and in the procedures' shipped templates)",
            fix="check the template name, or put the template in the site's templates/",
        ) from exc
    except SecurityError as exc:
        raise StepFailed(
            f"report template {_where(template, exc)} did something unsafe: {exc}",
            fix="remove the offending expression from the template",
        ) from exc
    except TemplateError as exc:
        raise StepFailed(
            f"report template {_where(template, exc)}: {exc}",
            fix="fix the template (a site's templates/ overrides shipped ones)",
        ) from exc
    except (ArithmeticError, TypeError, ValueError, MemoryError, RecursionError) as exc:
        if _template_line(exc) is None:
            raise  # not the template's doing: a bug to report, not a template to fix
        raise StepFailed(
            f"report template {_where(template, exc)}: {type(exc).__name__}: {exc}",
            fix="fix the template (a site's templates/ overrides shipped ones)",
        ) from exc
    return target


def _where(template: str, exc: BaseException) -> str:
    return f"{getattr(exc, 'filename', None) or template}:{_template_line(exc) or '?'}"


def _template_line(exc: BaseException) -> int | None:
    """The template line an error happened on.

    Syntax errors carry it; runtime errors (an undefined name, a failing
    filter) do not, but Jinja rewrites the traceback so that the template's
    own frames point at the template file and line.
    """
    lineno = getattr(exc, "lineno", None)
    if isinstance(lineno, int):
        return lineno
    found = None
    tb = exc.__traceback__
    while tb is not None:
        if "__jinja_exception__" in tb.tb_frame.f_globals:  # jinja2.debug.fake_traceback
            found = tb.tb_lineno
        tb = tb.tb_next
    return found
