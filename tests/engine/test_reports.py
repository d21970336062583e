"""Reports: never overwritten, site overrides and `default:` extension, the sandbox,
StrictUndefined, csvrow."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import string
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.engine.media import TEMP_SUFFIX, MediaStore
from runner.engine.reports import csvrow, free_name, make_environment, render_report
from runner.errors import SiteError, StepFailed
from runner.site import Site
from tests.helpers import (
    NOW_SUFFIX,
    TOY_PLAYBOOK,
    TOY_TEMPLATES,
    assert_clean,
    invoke,
    snapshot,
    status,
)

WritePlaybook = Callable[..., Path]
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
CONTEXT: dict[str, Any] = {"rows": [(1, "X"), (2, "A,B")], "total": 2}
# The toy playbook without its last step: a plan then ends with the report step.
MARK_LAST = TOY_PLAYBOOK.split("  - id: copy\n")[0]


def _site_template(site: Path, text: str, name: str = "toy/items.txt.j2") -> None:
    path = site / "templates" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _render(site: Path, template: str = "toy/items.txt.j2", dest: str = "reports/r.txt") -> str:
    env = make_environment(site / "templates", [TOY_TEMPLATES])
    media = MediaStore(Site(site))
    return render_report(env, media, template, free_name(media, dest, NOW), CONTEXT)


# -- never overwrite --------------------------------------------------------------------


def test_free_name_suffixes(tmp_path: Path) -> None:
    site = Site(tmp_path)
    media = MediaStore(site)
    assert free_name(media, "reports/./r.txt", NOW) == "reports/r.txt"
    media.write_bytes("reports/r.txt", b"1")
    assert free_name(media, "reports/r.txt", NOW) == f"reports/r.txt.{NOW_SUFFIX}"
    media.write_bytes(f"reports/r.txt.{NOW_SUFFIX}", b"2")
    assert free_name(media, "reports/r.txt", NOW) == f"reports/r.txt.{NOW_SUFFIX}_2"
    media.write_bytes(f"reports/r.txt.{NOW_SUFFIX}_2", b"3")
    assert free_name(media, "reports/r.txt", NOW) == f"reports/r.txt.{NOW_SUFFIX}_3"
    for hostile in ("../r.txt", "/tmp/r.txt", ".recover/r.txt"):
        with pytest.raises(SiteError):
            free_name(media, hostile, NOW)


def test_reports_are_never_overwritten(toy_playbook: Path, toy_site: Path) -> None:
    (toy_site / "reports").mkdir()
    (toy_site / "reports" / "items.txt").write_text("precious, written by someone else\n")
    assert invoke("run", toy_playbook, "--yes").exit_code == 0
    assert invoke("run", toy_playbook, "--yes", "--new-run").exit_code == 0
    assert (toy_site / "reports" / "items.txt").read_text() == (
        "precious, written by someone else\n"
    )
    first = toy_site / "reports" / f"items.txt.{NOW_SUFFIX}"
    second = toy_site / "reports" / f"items.txt.{NOW_SUFFIX}_2"
    assert first.read_text().startswith("ITEMS (shipped)\ntotal 100\n")
    assert second.read_text().startswith("ITEMS (shipped)\ntotal 0\n")
    runs = status(toy_site)["runs"]
    reports = [{s["step_id"]: s for s in run["steps"]}["mark"]["reports"] for run in runs]
    assert reports == [[f"reports/items.txt.{NOW_SUFFIX}_2"], [f"reports/items.txt.{NOW_SUFFIX}"]]


def test_the_report_is_rendered_from_the_catalog(toy_playbook: Path, toy_site: Path) -> None:
    assert invoke("run", toy_playbook, "--yes").exit_code == 0
    lines = (toy_site / "reports" / "items.txt").read_text().splitlines()
    assert lines[:3] == ["ITEMS (shipped)", "total 100", "6,X"]
    assert lines[-1] == "100,X" and len(lines) == 2 + 95


# -- overrides and default: ------------------------------------------------------------------


def test_a_site_template_overrides_the_shipped_one(toy_playbook: Path, toy_site: Path) -> None:
    _site_template(toy_site, "SITE REPORT {{ total }} items\n")
    assert invoke("run", toy_playbook, "--yes").exit_code == 0
    assert (toy_site / "reports" / "items.txt").read_text() == "SITE REPORT 100 items\n"


def test_a_site_template_extends_the_shipped_one_with_default_prefix(
    toy_site: Path, toy_env: None
) -> None:
    _site_template(
        toy_site,
        '{% extends "default:toy/items.txt.j2" %}\n{% block head %}\nSITE HEAD\n{% endblock %}\n',
    )
    written = _render(toy_site)
    text = (toy_site / written).read_text()
    assert text.startswith("SITE HEAD\ntotal 2\n")
    assert '2,"A,B"' in text


def test_the_shipped_template_is_used_without_an_override(toy_site: Path) -> None:
    written = _render(toy_site)
    assert (toy_site / written).read_text() == 'ITEMS (shipped)\ntotal 2\n1,X\n2,"A,B"\n'


# -- failures in report templates ---------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ rows.__class__.__init__.__globals__ }}",
        "{% for c in ''.__class__.__mro__[1].__subclasses__() %}{{ c }}{% endfor %}",
    ],
)
def test_a_hostile_report_template_is_refused(toy_site: Path, body: str) -> None:
    _site_template(toy_site, "head\n" + body + "\n")
    before = snapshot(toy_site)
    with pytest.raises(StepFailed, match="did something unsafe") as info:
        _render(toy_site)
    assert info.value.fix and "template" in info.value.fix
    files = {k: v for k, v in snapshot(toy_site).items() if v != "dir"}
    assert files == {k: v for k, v in before.items() if v != "dir"}  # no partial report
    assert CONTEXT["rows"] == [(1, "X"), (2, "A,B")]


def test_a_hostile_report_template_fails_the_plan_cleanly(
    toy_site: Path, write_playbook: WritePlaybook
) -> None:
    _site_template(toy_site, "{{ ''.__class__.__mro__ }}\n")
    before = snapshot(toy_site)
    result = invoke("plan", write_playbook(MARK_LAST))
    assert result.exit_code == 1
    assert_clean(result)
    assert "[!!] mark: toy.mark  [destructive]  failed" in result.stdout
    assert "did something unsafe" in result.stdout
    assert snapshot(toy_site) == before


def test_an_undefined_name_in_a_report_template_fails(toy_site: Path) -> None:
    _site_template(toy_site, "total {{ total }}\n{{ totl }}\n")
    with pytest.raises(StepFailed, match="'totl' is undefined"):
        _render(toy_site)
    assert not list((toy_site).rglob(f"*{TEMP_SUFFIX}"))
    assert not (toy_site / "reports" / "r.txt").exists()


def test_a_missing_template_fails(toy_site: Path) -> None:
    with pytest.raises(StepFailed, match=r"nope\.txt\.j2"):
        _render(toy_site, template="toy/nope.txt.j2")


def test_a_report_template_error_names_its_line(toy_site: Path) -> None:
    _site_template(toy_site, "total {{ total }}\n{{ totl }}\n")
    with pytest.raises(StepFailed) as info:
        _render(toy_site)
    assert ":?" not in info.value.message
    assert re.search(r"items\.txt\.j2\D{1,8}2\b", info.value.message), info.value.message


def test_a_syntax_error_in_a_report_template_names_its_line(toy_site: Path) -> None:
    _site_template(toy_site, "ok\nok\n{% for %}\n")
    with pytest.raises(StepFailed, match=r"items\.txt\.j2:3"):
        _render(toy_site)


@pytest.mark.usefixtures("fast_sqlite_timeout")
def test_a_report_failure_during_a_run_is_journaled(toy_playbook: Path, toy_site: Path) -> None:
    _site_template(toy_site, "{% for row in rows %}{{ row | csvrow }} {{ nope }}\n{% endfor %}")
    result = invoke("run", toy_playbook, "--yes")
    assert result.exit_code == 1
    assert_clean(result)
    assert "'nope' is undefined" in result.stderr
    (run,) = status(toy_site)["runs"]
    assert run["state"] == "failed"
    mark = {s["step_id"]: s for s in run["steps"]}["mark"]
    assert mark["state"] == "failed" and "'nope' is undefined" in mark["error"]


@pytest.mark.usefixtures("fast_sqlite_timeout")
def test_a_report_failure_in_a_plan_does_not_lock_the_next_step(
    toy_playbook: Path, toy_site: Path
) -> None:
    _site_template(toy_site, "{% for row in rows %}{{ row | csvrow }} {{ nope }}\n{% endfor %}")
    result = invoke("plan", toy_playbook, "--json")
    assert result.exit_code == 1

    steps = {s["id"]: s for s in json.loads(result.stdout)["steps"]}
    assert steps["mark"]["status"] == "failed"
    assert steps["copy"]["status"] == "done", steps["copy"]["error"]


# -- csvrow ---------------------------------------------------------------------------------


def test_csvrow_quotes_like_a_spreadsheet() -> None:
    assert csvrow([1, "plain", None, 2.5]) == "1,plain,,2.5"
    assert csvrow(["a,b", 'say "hi"', " lead"]) == '"a,b","say ""hi""", lead'
    assert csvrow([]) == ""


@pytest.mark.parametrize("cell", ["two\nlines", "carriage\rreturn", "both\r\n"])
def test_csvrow_quotes_line_breaks(cell: str) -> None:
    line = csvrow(["a", cell, "b"])
    assert next(csv.reader(io.StringIO(line, newline=""))) == ["a", cell, "b"]


_CELLS = st.one_of(
    st.none(),
    st.integers(),
    st.text(alphabet=string.printable.replace("\n", "").replace("\r", ""), max_size=12),
)


@settings(max_examples=200, deadline=None)
@given(values=st.lists(_CELLS, max_size=8))
def test_csvrow_round_trips_through_a_csv_reader(values: list[Any]) -> None:
    line = csvrow(values)
    assert "\n" not in line
    parsed = next(csv.reader(io.StringIO(line)), [])
    expected = ["" if v is None else str(v) for v in values]
    assert parsed == expected


def test_a_site_template_linking_out_of_the_site_is_refused(tmp_path: Path) -> None:
    site = tmp_path / "site"
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0\n", encoding="utf-8")
    path = site / "templates" / "toy" / "items.txt.j2"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(secret)
    with pytest.raises(SiteError, match="link that leaves the site"):
        _render(site)
    assert not (site / "reports" / "r.txt").exists()


def test_a_site_template_that_is_a_fifo_is_refused(tmp_path: Path) -> None:
    site = tmp_path / "site"
    path = site / "templates" / "toy" / "items.txt.j2"
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    with pytest.raises(SiteError, match="not a regular file"):
        _render(site)
