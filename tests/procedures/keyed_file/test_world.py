"""The world generator: deterministic, and scenario.json agrees with the files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.procedures.keyed_file.world import Options, generate
from tests.procedures.keyed_file.conftest import SiteMaker, digest, recover
from tests.procedures.keyed_file.readback import expected_entries, read_pair


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    spec = dict(records=2_000, damage=("eof", "missing"), seed=9)
    generate(tmp_path / "a", Options(**spec))  # type: ignore[arg-type]
    generate(tmp_path / "b", Options(**spec))  # type: ignore[arg-type]
    generate(tmp_path / "c", Options(**{**spec, "seed": 10}))  # type: ignore[arg-type]
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a") != digest(tmp_path / "c")


@pytest.mark.parametrize(
    "damage",
    [
        (),
        ("eof",),
        ("dangling",),
        ("split",),
        ("missing",),
        ("eof", "dangling", "split", "missing"),
    ],
)
def test_scenario_figures_match_the_files(make_site: SiteMaker, damage: tuple[str, ...]) -> None:
    site, scenario = make_site(records=2_500, keys=3, damage=damage, seed=4)
    assert json.loads((site / "scenario.json").read_text()) == scenario
    want = scenario["expected"]
    pair = read_pair(site / scenario["data_file"], site / scenario["key_file"])
    assert pair.crashed == bool(damage)
    assert (pair.fs_eof, pair.keyed_eof) == (want["fs_eof"], want["keyed_eof"])
    assert pair.key_eof == want["key_eof"]
    largest = max(max(b) for b in pair.blocks.values())
    assert largest == want["largest_block_address"]
    assert (pair.key_eof < largest + pair.spb) == ("split" in damage)
    valid = sum(1 for mark, _ in pair.records if mark == 0)
    assert valid == want["valid_records"]
    for k in want["keys"]:
        tree = pair.trees[k["key_no"]]
        assert len(tree) == k["values_before"]
        past_eof = [r for _, r in tree if r >= pair.keyed_eof]
        assert len(past_eof) == k["dangling"]
        present = set(tree)
        assert (
            sum(1 for e in expected_entries(pair, k["key_no"]) if e not in present)
            == (k["missing"])
        )
    if "missing" in damage:
        assert want["keys"][0]["missing"] == 0  # the primary key is updated last
        assert want["reload_needed"] and want["missing_keys"] > 0


def test_world_command(tmp_path: Path) -> None:
    result = recover(
        "world",
        "keyed",
        tmp_path / "w",
        "--records",
        "800",
        "--keys",
        "2",
        "--damage",
        "eof,split",
        "--damage",
        "missing",
        "--seed",
        "3",
    )
    assert result.exit_code == 0, result.output
    scenario = json.loads((tmp_path / "w" / "scenario.json").read_text())
    assert scenario["damage"] == ["eof", "missing", "split"]
    assert scenario["expected"]["keyed_eof"] == 800


@pytest.mark.parametrize(
    "args",
    [["--damage", "flood"], ["--keys", "0"], ["--key-lengths", "4,12"], ["--key-lengths", "x"]],
)
def test_world_command_refuses_bad_options(tmp_path: Path, args: list[str]) -> None:
    result = recover("world", "keyed", tmp_path / "w", *args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


def test_demo_case_runs_the_shipped_playbook(tmp_path: Path) -> None:
    from runner.procedures.keyed_file import PLAYBOOK, PROCEDURE

    assert PROCEDURE.demo is not None
    (case,) = PROCEDURE.demo(tmp_path / "demo")
    assert case.playbook == PLAYBOOK and PLAYBOOK.exists()
    want = json.loads((case.site / "scenario.json").read_text())["expected"]
    args = [a for k, v in case.params.items() for a in ("--param", f"{k}={v}")]
    result = recover("run", case.playbook, "--site", case.site, "--yes", *args)
    assert result.exit_code == 0, result.output
    assert want["reload_needed"] and "reload" in result.output
    pair = read_pair(
        case.site / want_path(case.site, "data"), case.site / want_path(case.site, "key")
    )
    assert len(pair.records) == want["after_reload"]["records"]


def want_path(site: Path, which: str) -> str:
    scenario = json.loads((site / "scenario.json").read_text())
    return str(scenario[f"{which}_file"])
