"""docs/keyed_file.md's checksum ranges (half-open) and block capacity formula
(k = the key's length, not the record length L), held to the code."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from runner.procedures.keyed_file.media import (
    Control,
    DataHeader,
    KeyDescriptor,
    encode_block,
    internal_capacity,
    leaf_capacity,
)

DOC = Path(__file__).resolve().parents[3] / "docs" / "keyed_file.md"


def test_capacity_uses_the_key_length() -> None:
    key = KeyDescriptor(position=10, length=42, duplicates=False, root=4)
    control = Control(8, 500, False, 4, 0, "", (key,))  # S = 8, record length 500
    assert leaf_capacity(control, key) == (8 * 512 - 16) // (42 + 4) == 88
    assert internal_capacity(control, key) == (8 * 512 - 16) // (42 + 8) == 81
    text = " ".join(DOC.read_text().split())
    assert "⌊(S×512 − 16) / (k+4)⌋" in text and "⌊(S×512 − 16) / (k+8)⌋" in text
    assert "k is the length of the block's key in bytes" in text


def test_checksum_ranges_are_as_documented() -> None:
    data = DataHeader(record_length=64, fs_eof=3, keyed_eof=5).encode()
    assert struct.unpack_from("<I", data, 508)[0] == zlib.crc32(data[:508])
    key = KeyDescriptor(0, 8, False, 4)
    control = Control(2, 64, True, 6, 0, "op", (key,)).encode()
    assert struct.unpack_from("<I", control, 2044)[0] == zlib.crc32(control[:2044])
    block = encode_block(1, 0, 1, b"k" * 8 + b"\0\0\0\1", 2 * 512)
    assert struct.unpack_from("<I", block, 12)[0] == zlib.crc32(block[:12] + block[16:])
