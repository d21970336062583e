"""Bad media: a clear error, exit code 1, no traceback, and the site unchanged."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.procedures.keyed_file.conftest import PLAYBOOK, SiteMaker, digest, recover
from tests.procedures.keyed_file.readback import read_pair

SECTOR = 512


def _patch(path: Path, offset: int, raw: bytes) -> None:
    data = bytearray(path.read_bytes())
    data[offset : offset + len(raw)] = raw
    path.write_bytes(bytes(data))


def _rewrite_block(key: Path, address: int, spb: int, edit: Callable[[bytearray], None]) -> None:
    """Edit a key block and give it a valid checksum again (so only the edit is wrong)."""
    data = bytearray(key.read_bytes())
    start, end = address * SECTOR, (address + spb) * SECTOR
    block = bytearray(data[start:end])
    edit(block)
    crc = zlib.crc32(bytes(block[16:]), zlib.crc32(bytes(block[:12])))
    struct.pack_into("<I", block, 12, crc)
    data[start:end] = block
    key.write_bytes(bytes(data))


def _root_child(index: int, address: Callable[[int], int]) -> Callable[[Path, Path], None]:
    """Point child `index` of key 1's root somewhere else."""

    def damage(dat: Path, key: Path) -> None:
        pair = read_pair(dat, key)
        root, length = pair.keys[0][3], pair.keys[0][1]
        at = 16 + index * (length + 8) + length + 4

        def edit(block: bytearray) -> None:
            struct.pack_into("<I", block, at, address(root))

        _rewrite_block(key, root, pair.spb, edit)

    return damage


def _truncate_in_largest_block(dat: Path, key: Path) -> None:
    pair = read_pair(dat, key)
    largest = max(max(b) for b in pair.blocks.values())
    with key.open("r+b") as handle:
        handle.truncate((largest + pair.spb // 2) * SECTOR)


def _flip(path_of: str, offset: Callable[[Path, Path], int]) -> Callable[[Path, Path], None]:
    def damage(dat: Path, key: Path) -> None:
        target = dat if path_of == "dat" else key
        at = offset(dat, key)
        raw = target.read_bytes()
        _patch(target, at, bytes([raw[at] ^ 0x5A]))

    return damage


def _leaf_offset(dat: Path, key: Path) -> int:
    pair = read_pair(dat, key)
    return pair.blocks[2][-1] * SECTOR + 100


CASES: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    "data wrong magic": (lambda d, k: _patch(d, 0, b"JUNK"), "is not a keyed data file"),
    "key wrong magic": (lambda d, k: _patch(k, 0, b"JUNK"), "is not a keyed key file"),
    "data header corrupt": (_flip("dat", lambda d, k: 40), "header checksum mismatch"),
    "control block corrupt": (_flip("key", lambda d, k: 300), "control block checksum"),
    "torn key block": (_flip("key", _leaf_offset), "checksum mismatch (torn or corrupt"),
    "truncated key block": (_truncate_in_largest_block, "is truncated"),
    "key file cut before its EOF": (
        lambda d, k: k.write_bytes(k.read_bytes()[: 8 * SECTOR]),
        "lies outside the file",
    ),
    "pointer outside the file": (
        _root_child(0, lambda root: 4 + 8 * 100_000),
        "outside the key file",
    ),
    "pointer off a block boundary": (_root_child(0, lambda root: 5), "not a key block address"),
    "cyclic pointers": (_root_child(1, lambda root: root), "cyclic or shared B-tree pointers"),
    "data file truncated": (lambda d, k: d.write_bytes(d.read_bytes()[:-500]), "is truncated"),
    "bad deleted mark": (lambda d, k: _patch(d, 512 + 65 * 7, b"\x07"), "invalid deleted mark"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_media_gives_clear_error_and_changes_nothing(make_site: SiteMaker, case: str) -> None:
    site, _ = make_site(records=3_000, damage=("split", "dangling", "eof"), seed=3)
    files = site / "files"
    damage, message = CASES[case]
    damage(files / "customers.dat", files / "customers.key")
    before = digest(site)
    for command in (("plan",), ("run", "--yes")):
        result = recover(command[0], PLAYBOOK, "--site", site, *command[1:])
        assert result.exit_code == 1, result.output
        assert message in result.output, result.output
        assert "fix:" in result.output
        assert "Traceback" not in result.output and "internal error" not in result.output
        assert digest(site) == before, f"{command[0]} changed the site"


def test_duplicate_in_unique_key_refuses_reload_and_keeps_old_pair(
    make_site: SiteMaker, tmp_path: Path
) -> None:
    """A reload that cannot finish leaves the old pair in place, untouched."""
    site, _ = make_site(records=300, damage=("missing",), seed=2)
    files = site / "files"
    dat = files / "customers.dat"
    raw = dat.read_bytes()
    slot = 65  # 64-byte records + deleted mark; key 1 = bytes 0..9 of the payload
    first, second = [r for r in range(300) if raw[512 + r * slot] == 0][:2]
    _patch(dat, 512 + second * slot + 1, raw[512 + first * slot + 1 : 512 + first * slot + 11])
    repaired = recover("run", PLAYBOOK, "--site", site, "--yes")
    assert repaired.exit_code == 1, repaired.output
    assert "allows no duplicates" in repaired.output
    assert not (files / "customers.dat.new").exists()
    assert not (files / "customers.dat.bak").exists()
    assert sorted(p.name for p in files.iterdir()) == ["customers.dat", "customers.key"]
