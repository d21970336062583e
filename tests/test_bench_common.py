"""The benchmarks' summary interface: Target rows and the one table bench/run.py prints.

No timing is asserted here (timing targets live only in bench/): these check that
a row passes or fails on its ratio and on whether the outputs matched, and that
run.py collects the rows every bench_*.py records into one table and exit code.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from bench import common
from bench.common import Target, summary_table

ROOT = Path(__file__).resolve().parent.parent


def test_a_target_passes_only_within_its_limit_and_with_equal_outputs() -> None:
    assert Target("b", "w", 3.0, 2.0, 1.5).passed
    assert Target("b", "w", 3.0, 2.0, 1.5).ratio == pytest.approx(1.5)
    assert not Target("b", "w", 3.1, 2.0, 1.5).passed
    assert not Target("b", "w", 1.0, 2.0, 1.5, same=False).passed  # fast but different output
    assert not Target("b", "w", 1.0, 0.0, 1.5).passed  # no baseline time: no ratio


def test_the_table_lists_every_row_with_its_verdict() -> None:
    table = summary_table(
        [Target("keyed", "reload 1M", 2.0, 1.0, 2.0), Target("pools", "fix", 5.0, 1.0, 2.0)]
    )
    lines = table.splitlines()
    assert "keyed" in lines[1] and lines[1].rstrip().endswith("pass")
    assert "pools" in lines[2] and lines[2].rstrip().endswith("FAIL")
    assert lines[-1] == "1 of 2 targets met"


def _run_py(monkeypatch: pytest.MonkeyPatch, folder: Path) -> object:
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "HERE", folder)
    monkeypatch.setattr(common, "TARGETS", [])
    return module


FAKE = """
from bench.common import Target, record


def main(argv):
    scale = float(argv[argv.index("--scale") + 1])
    record(Target("fake", "work at scale %g" % scale, RUNNER, 1.0, 2.0))
    return 0
"""


@pytest.mark.parametrize(("runner_s", "code", "verdict"), [(1.5, 0, "pass"), (2.5, 1, "FAIL")])
def test_run_py_collects_the_rows_of_every_bench_into_one_table(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    runner_s: float,
    code: int,
    verdict: str,
) -> None:
    for name in ("one", "two"):
        (tmp_path / f"bench_{name}.py").write_text(FAKE.replace("RUNNER", str(runner_s)))
    run = _run_py(monkeypatch, tmp_path)
    assert run.main(["--scale", "0.5"]) == code  # type: ignore[attr-defined]
    out = capsys.readouterr().out
    summary = out[out.index("##### summary") :].splitlines()
    rows = [line for line in summary if line.startswith("fake")]
    assert len(rows) == 2
    assert all("work at scale 0.5" in row and row.endswith(verdict) for row in rows)
    assert summary[-1] == f"{2 if code == 0 else 0} of 2 targets met"
