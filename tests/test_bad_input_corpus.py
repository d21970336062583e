"""The bad-input corpus (issue 15): hundreds of generated bad inputs against all
five procedures' shipped playbooks, through validate, plan and run.

Every case must end through the CLI's own error handling: exit 1, 2 or 3, a
message with a `fix:` line, no "internal error", no traceback, within 10
seconds, and (whenever the exit is not 0) a site byte-identical to before,
the runner's `.recover/` aside. Each case id says what it is:
`<procedure>-<command>-<category>-<what>`.

Each procedure's site is generated once per module and copied for each case;
cases run in-process through click's CliRunner, except those where a hang
matters (a FIFO or a link to /dev/zero where a file is expected), which run
as a real process with a timeout.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from runner.engine import media
from runner.procedures.archive_volume import catalog as archive_catalog
from runner.procedures.case_archive import catalog as cases_catalog
from runner.procedures.pool_containers import catalog as pools_catalog
from tests.helpers import PLAYBOOKS_DIR, assert_clean, invoke, process_env, run_process

NOW = "2026-01-06T09:00:00+00:00"
HANG_SECONDS = 10


@dataclass(frozen=True)
class Procedure:
    """What the corpus needs to know of a procedure to break its inputs."""

    name: str
    playbook: str
    world: tuple[str, ...]
    int_param: str
    str_param: str
    path_param: str | None
    catalogs: tuple[str, ...]
    #: (table, column, declared type) of catalog columns to give wrong-typed values
    typed: tuple[tuple[str, str, str], ...]
    #: media files the shipped playbook reads, site-relative
    media: tuple[str, ...]
    #: catalog tables whose loss the playbook cannot work without
    tables: tuple[str, ...] = ()
    #: the run clock (RECOVER_NOW) under which the shipped playbook succeeds on the site
    clock: str = NOW


PROCEDURES = (
    Procedure(
        name="archive",
        playbook="archive-volume-recovery.yaml",
        world=("archive", "--studies", "40"),
        int_param="max_jobs",
        str_param="volume",
        path_param="pre_report",
        catalogs=("catalog.sqlite",),
        typed=(
            ("volumes", "block_count", "int"),
            ("object_locations", "ordinal", "int"),
            ("volumes", "media_path", "text"),
        ),
        media=("volumes/VOL0002.vol", "volumes/VOL0001.vol"),
        tables=archive_catalog.TABLES,
    ),
    Procedure(
        name="cases",
        playbook="case-archive.yaml",
        world=("cases", "--hours", "16"),
        clock="2026-03-10T20:00:00+00:00",  # inside the site's tape access window
        int_param="",
        str_param="session",
        path_param=None,
        catalogs=("catalog.sqlite",),
        typed=(
            ("products", "size", "int"),
            ("tapes", "used", "int"),
            ("products", "relpath", "text"),
        ),
        media=(),
        tables=cases_catalog.TABLES,
    ),
    Procedure(
        name="keyed",
        playbook="keyed-file-repair.yaml",
        world=("keyed", "--records", "300"),
        int_param="fill_percent",
        str_param="user",
        path_param="report_dir",
        catalogs=(),
        typed=(),
        media=("files/customers.dat", "files/customers.key"),
    ),
    Procedure(
        name="pools",
        playbook="pool-container-fix.yaml",
        world=("pools", "--elements", "30"),
        clock="2026-01-15T12:00:00+00:00",  # the repository's present
        int_param="batch_size",
        str_param="since",
        path_param=None,
        catalogs=("catalog.sqlite",),
        typed=(
            ("versions", "number", "int"),
            ("containers", "element_id", "int"),
            ("elements", "path", "text"),
        ),
        media=(),
        tables=pools_catalog.TABLES,
    ),
    Procedure(
        name="rollforward",
        playbook="roll-forward.yaml",
        world=("rollforward", "--transactions", "60", "--rows", "10"),
        int_param="error_limit",
        str_param="log_set",
        path_param=None,
        catalogs=("backups/sales.sqlite",),
        typed=(),
        media=("backups/sales.sqlite", "backups/stock.sqlite", "logs/dblog.1.log"),
    ),
)
BY_NAME = {p.name: p for p in PROCEDURES}


# -- the cases ------------------------------------------------------------------

SiteEdit = Callable[[Path], None]
TextEdit = Callable[[bytes], bytes]


@dataclass(frozen=True)
class Case:
    id: str
    procedure: str
    command: str  # validate, plan or run
    text_edit: TextEdit | None = None
    site_edit: SiteEdit | None = None
    params: tuple[str, ...] = ()
    process: bool = False  # a hang matters: run it as a real process
    full_disk: bool = False  # every media write fails with ENOSPC


def _replace(old: str, new: str, count: int = 1) -> TextEdit:
    def edit(text: bytes) -> bytes:
        assert old.encode() in text, f"{old!r} is not in the playbook"
        return text.replace(old.encode(), new.encode(), count)

    return edit


def _append(extra: str) -> TextEdit:
    return lambda text: text + extra.encode()


def _whole(new: bytes) -> TextEdit:
    return lambda _text: new


#: edits of a playbook's text that any of the five shipped playbooks takes
TEXT_EDITS: dict[str, TextEdit] = {
    "yaml-unclosed-bracket": _replace("steps:\n", "steps:\n  - id: [oops\n"),
    "yaml-tab-indent": _replace("steps:\n  - id:", "steps:\n\t- id:"),
    "yaml-duplicate-key": _replace("version: 1\n", "version: 1\nversion: 1\n"),
    "yaml-invalid-bytes": lambda text: text.replace(b"description:", b"description: \xff\xfe", 1),
    "yaml-empty-file": _whole(b""),
    "yaml-a-list": _whole(b"- 1\n- 2\n"),
    "yaml-python-tag": _replace("version: 1\n", "version: !!python/object/apply:os.system [ls]\n"),
    "yaml-alias-bomb": _append(
        "\nbomb0: &b0 [x, x, x, x, x, x, x, x, x, x]\n"
        + "".join(
            f"bomb{i}: &b{i} [*b{i - 1}, *b{i - 1}, *b{i - 1}, *b{i - 1}, *b{i - 1}, "
            f"*b{i - 1}, *b{i - 1}, *b{i - 1}, *b{i - 1}, *b{i - 1}]\n"
            for i in range(1, 9)
        )
    ),
    "type-version-text": _replace("version: 1\n", "version: one\n"),
    "type-steps-mapping": lambda text: text.split(b"\nsteps:")[0] + b"\nsteps: {a: 1}\n",
    "type-steps-empty": lambda text: text.split(b"\nsteps:")[0] + b"\nsteps: []\n",
    "type-step-without-action": _replace("    action: ", "    actio: ", 1),
    "type-unknown-action": _replace("    action: ", "    action: nosuch.", 1),
    "type-unknown-top-level-key": _append("\nextra_key: 1\n"),
    "huge-int-5000-digits": _replace("version: 1\n", "version: " + "9" * 5000 + "\n"),
    "huge-int-sqlite": _replace("version: 1\n", "version: 99999999999999999999\n"),
    "path-report-dotdot": _replace("reports", "../../reports"),
    "path-report-absolute": _replace("reports", "/tmp/reports"),
    "path-report-state-dir": _replace("reports", ".recover/reports"),
    "path-report-name-too-long": _replace("reports", "reports/" + "x" * 300),
    "template-python-internals": _replace(
        '"{{ ', "\"{{ ''.__class__.__mro__[1].__subclasses__() }}{{ ", 1
    ),
    "template-huge-center": _replace('"{{ ', "\"{{ 'x' | center(10**9) }}{{ ", 1),
    "template-lipsum": _replace('"{{ ', '"{{ lipsum(10**6) }}{{ ', 1),
    "template-nested-range": _replace(
        '"{{ ',
        '"{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}{{ ',
        1,
    ),
    "template-syntax-error": _replace('"{{ ', '"{{ (( }}{{ ', 1),
    "template-undefined-name": _replace('"{{ ', '"{{ no_such_param }}{{ ', 1),
    "template-power-overflow": _replace('"{{ ', '"{{ 2 ** 10000000 }}{{ ', 1),
    "template-division-by-zero": _replace('"{{ ', '"{{ 1 // 0 }}{{ ', 1),
}


def _param_cases(proc: Procedure) -> dict[str, tuple[str, ...]]:
    """Bad `--param` values for plan and run."""
    out: dict[str, tuple[str, ...]] = {
        "param-unknown-name": ("no_such_param=1",),
        "param-no-equals": ("just_a_word",),
        "param-surrogates": (f"{proc.str_param}=\udcff\udcfe",),
        "param-nul-byte": (f"{proc.str_param}=a\x00b",),
        "param-empty-name": ("=1",),
    }
    if proc.int_param:
        out |= {
            "param-int-huge": (f"{proc.int_param}=99999999999999999999",),
            "param-int-5000-digits": (f"{proc.int_param}={'9' * 5000}",),
            "param-int-text": (f"{proc.int_param}=many",),
            "param-int-negative": (f"{proc.int_param}=-5",),
            "param-int-float": (f"{proc.int_param}=1.5",),
            "param-int-list": (f"{proc.int_param}=[1, 2]",),
        }
    if proc.path_param:
        out |= {
            "path-absolute": (f"{proc.path_param}=/etc/passwd",),
            "path-dotdot": (f"{proc.path_param}=../outside.txt",),
            "path-state-dir": (f"{proc.path_param}=.recover/x",),
            "path-backslash": (f"{proc.path_param}=..\\..\\x",),
            "path-name-too-long": (f"{proc.path_param}=reports/{'x' * 300}",),
        }
    return out


# -- site edits -------------------------------------------------------------------


def _remove(rel: str) -> SiteEdit:
    def edit(site: Path) -> None:
        target = site / rel
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink()

    return edit


def _garbage(rel: str) -> SiteEdit:
    def edit(site: Path) -> None:
        size = max((site / rel).stat().st_size, 4096)
        (site / rel).write_bytes(bytes((i * 131 + 7) % 251 for i in range(size)))

    return edit


def _truncate(rel: str, keep: float) -> SiteEdit:
    def edit(site: Path) -> None:
        path = site / rel
        os.truncate(path, int(path.stat().st_size * keep))

    return edit


def _empty(rel: str) -> SiteEdit:
    return _truncate(rel, 0)


def _into_dir(rel: str) -> SiteEdit:
    def edit(site: Path) -> None:
        (site / rel).unlink()
        (site / rel).mkdir()
        (site / rel / "inside").write_text("x")

    return edit


def _into_fifo(rel: str) -> SiteEdit:
    def edit(site: Path) -> None:
        (site / rel).unlink()
        os.mkfifo(site / rel)

    return edit


def _into_link(rel: str, target: str) -> SiteEdit:
    def edit(site: Path) -> None:
        (site / rel).unlink()
        (site / rel).symlink_to(target)

    return edit


def _link_outside(rel: str) -> SiteEdit:
    """The file becomes a link to a copy of itself outside the site."""

    def edit(site: Path) -> None:
        outside = site.parent / ("outside-" + Path(rel).name)
        shutil.copyfile(site / rel, outside)
        (site / rel).unlink()
        (site / rel).symlink_to(outside)

    return edit


def _loop(rel: str) -> SiteEdit:
    def edit(site: Path) -> None:
        (site / rel).unlink()
        (site / rel).symlink_to(Path(rel).name + ".loop")
        (site / (rel + ".loop")).symlink_to(Path(rel).name)

    return edit


def _sql(rel: str, *statements: str) -> SiteEdit:
    def edit(site: Path) -> None:
        conn = sqlite3.connect(site / rel)
        try:
            with conn:
                for statement in statements:
                    conn.execute(statement)
        finally:
            conn.close()

    return edit


def _wrong_type(rel: str, table: str, column: str, value: str) -> SiteEdit:
    """One row's column set to a value of another storage class (the schema's
    constraints do not stop it: SQLite's columns take any type)."""
    return _sql(
        rel,
        f'UPDATE "{table}" SET "{column}" = {value} '
        f'WHERE "{column}" = (SELECT min("{column}") FROM "{table}")',
    )


def _file_edits(rel: str, slug: str, *, special: bool) -> dict[str, tuple[SiteEdit, bool]]:
    """(edit, needs a real process) for a file the playbook reads; `special`
    adds a FIFO and a link to /dev/zero in its place (run as real processes,
    so they are kept to one file per procedure: each costs a Python start)."""
    out = {
        f"{slug}-missing": (_remove(rel), False),
        f"{slug}-garbage": (_garbage(rel), False),
        f"{slug}-truncated-half": (_truncate(rel, 0.5), False),
        f"{slug}-truncated-tenth": (_truncate(rel, 0.1), False),
        f"{slug}-empty": (_empty(rel), False),
        f"{slug}-a-directory": (_into_dir(rel), False),
        f"{slug}-link-leaving-site": (_link_outside(rel), False),
        f"{slug}-symlink-loop": (_loop(rel), False),
        f"{slug}-dangling-link": (_into_link(rel, "no-such-target"), False),
    }
    if special:
        out[f"{slug}-a-fifo"] = (_into_fifo(rel), True)
        out[f"{slug}-link-to-dev-zero"] = (_into_link(rel, "/dev/zero"), True)
    return out


def _slug(rel: str) -> str:
    return rel.replace("/", "_").replace(".", "_")


def _reports_elsewhere(site: Path) -> None:
    """`reports/` becomes a link to a directory outside the site."""
    outside = site.parent / "outside-reports"
    outside.mkdir()
    if (site / "reports").exists():
        shutil.rmtree(site / "reports")
    (site / "reports").symlink_to(outside)


def _reports_a_file(site: Path) -> None:
    if (site / "reports").exists():
        shutil.rmtree(site / "reports")
    (site / "reports").write_text("a file where the reports directory belongs\n")


def _site_cases(proc: Procedure) -> dict[str, tuple[SiteEdit, bool]]:
    out: dict[str, tuple[SiteEdit, bool]] = {
        "reports-dir-link-leaving-site": (_reports_elsewhere, False),
        "reports-dir-a-file": (_reports_a_file, False),
    }
    for index, rel in enumerate(dict.fromkeys((*proc.catalogs, *proc.media))):
        kind = "catalog" if rel in proc.catalogs else "media"
        out |= _file_edits(rel, f"{kind}-{_slug(rel)}", special=index == 0)
    for rel in proc.catalogs:
        for table in proc.tables:
            out[f"catalog-dropped-table-{table}"] = (_sql(rel, f'DROP TABLE "{table}"'), False)
        for table, column, declared in proc.typed:
            for kind, value in WRONG_VALUES[declared]:
                out[f"catalog-{table}-{column}-{kind}"] = (
                    _wrong_type(rel, table, column, value),
                    False,
                )
    return out


#: values of another storage class than a column's declared type (a number
#: put in a TEXT column becomes text: SQLite's affinity, so not a wrong type)
WRONG_VALUES = {
    "int": (
        ("blob", "x'00ff'"),
        ("text-for-number", "'not a number'"),
        ("huge-integer", "99999999999999999999"),
        ("real", "1.5"),
    ),
    "text": (("blob", "x'00ff'"),),
}


def _cases() -> Iterator[Case]:
    for proc in PROCEDURES:
        for name, edit in TEXT_EDITS.items():
            for command in ("validate", "plan", "run"):
                yield Case(f"{proc.name}-{command}-{name}", proc.name, command, text_edit=edit)
        for name, params in _param_cases(proc).items():
            for command in ("plan", "run"):
                yield Case(f"{proc.name}-{command}-{name}", proc.name, command, params=params)
        for name, (edit, process) in _site_cases(proc).items():
            for command in ("plan", "run"):
                yield Case(
                    f"{proc.name}-{command}-{name}",
                    proc.name,
                    command,
                    site_edit=edit,
                    process=process,
                )
        # An archive run changes its catalog in three steps before its first media
        # write: a full disk there is a failed step, not bad input (the re-run
        # completes; tests/test_environment_faults.py).
        for command in ("plan", "run") if proc.name != "archive" else ("plan",):
            yield Case(f"{proc.name}-{command}-full-disk", proc.name, command, full_disk=True)


CASES = list(_cases())


# -- running a case ---------------------------------------------------------------


@pytest.fixture(scope="module")
def base_sites(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each procedure's site, generated once for the module (cases copy it)."""
    root = tmp_path_factory.mktemp("corpus")
    out = {}
    for proc in PROCEDURES:
        site = root / proc.name
        result = invoke("world", *proc.world[:1], site, *proc.world[1:])
        assert result.exit_code == 0, result.output
        out[proc.name] = site
    return out


@dataclass
class Pristine:
    """A copy of a procedure's site shared by the cases that leave the site as it
    is (bad playbooks, bad params), with its tree: a case that changes it fails,
    and the next case gets a fresh copy."""

    site: Path
    tree: dict[str, str]


@pytest.fixture(scope="module")
def pristine(base_sites: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("shared")
    copies: dict[str, Pristine] = {}

    def get(name: str) -> Pristine:
        known = copies.get(name)
        if known is None or tree(known.site) != known.tree:
            site = root / f"{name}-{len(copies)}-{time.monotonic_ns()}"
            shutil.copytree(base_sites[name], site, symlinks=True)
            known = copies[name] = Pristine(site, tree(site))
        return known

    return get


@pytest.fixture(autouse=True)
def _pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECOVER_NOW", NOW)
    monkeypatch.delenv("RECOVER_CRASH_AT", raising=False)
    monkeypatch.delenv("RECOVER_EXTRA_PROCEDURES", raising=False)


def tree(root: Path) -> dict[str, str]:
    """Every entry under root but `.recover/`: files by content and mode, links by
    target, directories, and special files by kind (never opened: a FIFO would
    block)."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        if rel_dir == ".recover" or rel_dir.startswith(".recover/"):
            continue
        for name in (*dirnames, *filenames):
            path = os.path.join(dirpath, name)
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if rel == ".recover":
                continue
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                out[rel] = "link -> " + os.readlink(path)
            elif stat.S_ISDIR(info.st_mode):
                out[rel] = "dir"
            elif stat.S_ISREG(info.st_mode):
                with open(path, "rb") as handle:
                    digest = hashlib.sha256(handle.read()).hexdigest()
                out[rel] = f"{digest} mode={info.st_mode & 0o7777:o}"
            else:
                out[rel] = f"special {stat.S_IFMT(info.st_mode):o}"
    return out


class Hang(BaseException):
    """Raised by the alarm: the command ran past HANG_SECONDS."""


def _on_alarm(_signum: int, _frame: FrameType | None) -> None:
    raise Hang(f"no answer within {HANG_SECONDS} s")


@dataclass
class Outcome:
    exit_code: int
    output: str
    seconds: float


def _run_in_process(args: list[str]) -> Outcome:
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(HANG_SECONDS + 5)
    started = time.monotonic()
    try:
        result = invoke(*args)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    seconds = time.monotonic() - started
    assert_clean(result)
    return Outcome(result.exit_code, result.output, seconds)


def _run_as_process(args: list[str], clock: str) -> Outcome:
    env = process_env(RECOVER_NOW=clock)
    env.pop("RECOVER_EXTRA_PROCEDURES", None)
    started = time.monotonic()
    try:
        done = run_process(*args, env=env, timeout=HANG_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`recover {' '.join(args)}` hung past {HANG_SECONDS} s")
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output
    assert "internal error" not in output, output
    return Outcome(done.returncode, output, time.monotonic() - started)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_bad_input_ends_cleanly_and_changes_nothing(
    case: Case,
    base_sites: dict[str, Path],
    pristine: Callable[[str], Pristine],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proc = BY_NAME[case.procedure]
    if case.site_edit is None:
        shared = pristine(proc.name)
        site, before = shared.site, shared.tree
    else:
        site = tmp_path / "site"
        shutil.copytree(base_sites[proc.name], site, symlinks=True)
        case.site_edit(site)
        before = tree(site)
    text = (PLAYBOOKS_DIR / proc.playbook).read_bytes()
    if case.text_edit is not None:
        text = case.text_edit(text)
    playbook = tmp_path / proc.playbook
    playbook.write_bytes(text)
    if case.full_disk:
        _fill_the_disk(monkeypatch)

    args = [case.command, str(playbook)]
    if case.command != "validate":
        args += ["--site", str(site)]
        for param in case.params:
            args += ["--param", param]
    if case.command == "run":
        args.append("--yes")
    monkeypatch.setenv("RECOVER_NOW", proc.clock)
    outcome = _run_as_process(args, proc.clock) if case.process else _run_in_process(args)

    assert outcome.exit_code in (1, 2, 3), outcome.output
    assert outcome.seconds < HANG_SECONDS, f"took {outcome.seconds:.1f} s"
    fixes = [line for line in outcome.output.splitlines() if line.strip().startswith("fix:")]
    assert fixes, f"no fix line in:\n{outcome.output}"
    assert all(len(line.strip()) > len("fix: ") + 5 for line in fixes), outcome.output
    assert tree(site) == before, f"the site changed; the command said:\n{outcome.output}"


def _fill_the_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every file the media layer creates fails as on a full disk."""

    def full(tmp: Path, mode: int) -> Any:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp))

    monkeypatch.setattr(media, "_create_fresh", full)


@pytest.mark.parametrize("name", [p.name for p in PROCEDURES])
def test_the_shipped_playbook_succeeds_on_the_unbroken_site(
    name: str, base_sites: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each case's failure is its bad input's doing: without it, validate, plan
    and run succeed on a copy of the same site under the same clock."""
    proc = BY_NAME[name]
    monkeypatch.setenv("RECOVER_NOW", proc.clock)
    site = tmp_path / "site"
    shutil.copytree(base_sites[name], site, symlinks=True)
    playbook = PLAYBOOKS_DIR / proc.playbook
    assert invoke("validate", playbook).exit_code == 0
    for command in (["plan"], ["run", "--yes"]):
        result = invoke(command[0], playbook, "--site", site, *command[1:])
        assert result.exit_code == 0, result.output


def test_the_corpus_is_large_and_covers_every_procedure_and_command() -> None:
    assert len(CASES) >= 300
    assert len({c.id for c in CASES}) == len(CASES)
    for proc in PROCEDURES:
        for command in ("validate", "plan", "run"):
            assert any(c.procedure == proc.name and c.command == command for c in CASES)
