"""The key walk answers "every entry of this leaf points to a valid record" from
the set of invalid records when they are few (runner.procedures.keyed_file.
keyinfo): the findings and the patched leaves must be exactly those of looking
every record number up in the map."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runner.procedures.keyed_file import keyinfo
from runner.procedures.keyed_file.keyinfo import Findings, inspect_pair
from runner.procedures.keyed_file.media import (
    DATA_HEADER_SIZE,
    DELETED,
    LIVE,
    DataHeader,
    read_pair_info,
)
from runner.procedures.keyed_file.world import Options, generate


def _inspect(site: Path) -> tuple[Findings, dict[int, bytes]]:
    patched: dict[int, bytes] = {}
    files = site / "files"
    with (files / "customers.dat").open("rb") as data, (files / "customers.key").open("rb") as key:
        info = read_pair_info(data, key, "customers.dat", "customers.key", no_check=True)
        found = inspect_pair(data, key, info, patch=patched.__setitem__, deep=True)
    return found, patched


@pytest.mark.parametrize(
    "spec",
    [
        {"damage": ("eof", "dangling", "split", "missing"), "deleted_percent": 5.0},
        {"damage": ("dangling",), "deleted_percent": 0.0},
        {"damage": ("dangling", "missing"), "deleted_percent": 40.0},  # too many for the set
        {"damage": (), "deleted_percent": 0.0},
    ],
)
def test_the_set_of_invalid_records_gives_what_the_map_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spec: dict[str, Any]
) -> None:
    site = tmp_path / "site"
    generate(site, Options(records=6_000, keys=3, seed=11, **spec))
    _delete_behind_the_keys(site, every=97)
    fast = _inspect(site)
    monkeypatch.setattr(keyinfo, "_invalid_records", lambda valid: None)
    assert _inspect(site) == fast


def _delete_behind_the_keys(site: Path, every: int) -> None:
    """Mark every `every`-th live record deleted in the data file only: its key
    entries then point, inside the map, to records that are not valid."""
    path = site / "files" / "customers.dat"
    with path.open("r+b") as data:
        header = DataHeader.decode(data.read(DATA_HEADER_SIZE), path.name)
        for record in range(0, header.keyed_eof, every):
            data.seek(DATA_HEADER_SIZE + record * header.slot)
            if data.read(1) == bytes([LIVE]):
                data.seek(-1, 1)
                data.write(bytes([DELETED]))


def test_the_set_is_kept_only_while_invalid_records_are_few() -> None:
    few = bytearray(b"\x01" * 1000)
    few[3] = few[999] = 0
    assert keyinfo._invalid_records(few) == {3, 999}
    many = bytearray(b"\x00\x01" * 500)
    assert keyinfo._invalid_records(many) is None
