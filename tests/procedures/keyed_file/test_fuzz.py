"""Fuzz: corrupt a key block (fixing its checksum, so the structure checks are what
stands in the way) or any byte of the pair. Every action either works or
raises a RecoverError, and a failed repair leaves the files as they were."""

from __future__ import annotations

import re
import shutil
import struct
import tempfile
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from runner.errors import RecoverError
from runner.procedures.keyed_file.actions.count import Count
from runner.procedures.keyed_file.actions.reload import Reload
from runner.procedures.keyed_file.actions.repair import Repair
from runner.procedures.keyed_file.actions.verify import Verify
from runner.procedures.keyed_file.world import Options, generate
from tests.procedures.keyed_file.conftest import digest
from tests.procedures.keyed_file.fakectx import FakeContext

ARGS = {"data_file": "files/customers.dat", "key_file": "files/customers.key"}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("keyed-fuzz") / "site"
    generate(
        site,
        Options(
            records=400,
            keys=2,
            sectors_per_block=1,
            fill_percent=70,
            damage=("eof", "dangling", "split", "missing"),
            seed=8,
        ),
    )
    return site


def _attempt(site: Path) -> None:
    """Verify, then repair (whatever verify said), then count and reload if repaired."""
    try:
        Verify({**ARGS, "no_check": True}).run(FakeContext(site))  # type: ignore[arg-type]
        event("verify passes")
    except RecoverError as exc:
        event("verify: " + re.sub(r"[\d,]+", "N", exc.message.split(": ")[-1])[:45])
    before = digest(site, under="files")
    try:
        Repair(ARGS).run(FakeContext(site))  # type: ignore[arg-type]
    except RecoverError:
        event("repair refuses")
        assert digest(site, under="files") == before, "a failed repair changed files"
        return
    event("repair works")
    for action in (Count(ARGS), Reload(ARGS)):
        try:
            action.run(FakeContext(site))  # type: ignore[arg-type]
        except RecoverError:
            event(f"{type(action).__name__} refuses")


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.data())
def test_structural_corruption_with_valid_checksums(pristine: Path, data: st.DataObject) -> None:
    site = Path(tempfile.mkdtemp(prefix="keyed-fuzz-"))
    try:
        shutil.copytree(pristine, site, dirs_exist_ok=True)
        key = site / ARGS["key_file"]
        raw = bytearray(key.read_bytes())
        blocks = (len(raw) // 512) - 4
        for _ in range(data.draw(st.integers(1, 3))):
            address = 4 + data.draw(st.integers(0, blocks - 1))
            block = raw[address * 512 : (address + 1) * 512]
            at = data.draw(st.sampled_from([2, 3, 4, 5]) | st.integers(16, 511))
            block[at] ^= data.draw(st.integers(1, 255))
            struct.pack_into(
                "<I", block, 12, zlib.crc32(bytes(block[16:]), zlib.crc32(bytes(block[:12])))
            )
            raw[address * 512 : (address + 1) * 512] = block
        key.write_bytes(bytes(raw))
        _attempt(site)
    finally:
        shutil.rmtree(site)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.sampled_from(["dat", "key"]), st.floats(0, 1, exclude_max=True), st.integers(1, 255))
def test_any_flipped_byte(pristine: Path, which: str, where: float, xor: int) -> None:
    site = Path(tempfile.mkdtemp(prefix="keyed-fuzz-"))
    try:
        shutil.copytree(pristine, site, dirs_exist_ok=True)
        path = site / ARGS["data_file" if which == "dat" else "key_file"]
        raw = bytearray(path.read_bytes())
        raw[int(where * len(raw))] ^= xor
        path.write_bytes(bytes(raw))
        _attempt(site)
    finally:
        shutil.rmtree(site)
