"""docs/roll_forward.md states the format an independent implementer needs: the
rf_flags DDL, every checksum's half-open byte range, the delete's empty column
list. These tests hold the code to what the doc says."""

from __future__ import annotations

import re
import sqlite3
import struct
import zlib
from pathlib import Path

from runner.procedures.roll_forward import media as m
from runner.procedures.roll_forward.catalog import FLAGS_DDL, StatementCache

DOC = Path(__file__).resolve().parents[3] / "docs" / "roll_forward.md"


def _words(sql: str) -> str:
    return " ".join(sql.split())


def test_rf_flags_ddl_in_the_doc_is_the_codes() -> None:
    blocks = re.findall(r"```sql\n(.*?)```", DOC.read_text(), re.S)
    documented = [b for b in blocks if "CREATE TABLE rf_flags" in b]
    assert len(documented) == 1
    assert _words(documented[0]) == _words(FLAGS_DDL.format(schema=""))


def test_checksum_ranges_are_as_documented(tmp_path: Path) -> None:
    name = "dblog"
    writer = m.LogSetWriter(tmp_path, name, 7, file_bytes=1 << 40)
    for i in range(5):
        writer.write(m.TIME, struct.pack("<q", i))
    writer.switch()
    writer.close()
    first = (tmp_path / f"{name}.1.log").read_bytes()
    length = len(name)
    header = 35 + length
    # header: CRC-32 of [0, 31+L) at 31+L
    assert struct.unpack_from("<I", first, 31 + length)[0] == zlib.crc32(first[: 31 + length])
    # each record: CRC-32 of the record's [4, 17+len)
    pos = header
    while pos < len(first):
        crc, size = struct.unpack_from("<II", first, pos)
        assert crc == zlib.crc32(first[pos + 4 : pos + 17 + size])
        pos += 17 + size
    assert pos == len(first)
    # switch: the last 37 bytes; content CRC of [H, S), the file header not covered
    switch = len(first) - 37
    assert first[switch + 16] == m.SWITCH and struct.unpack_from("<I", first, switch + 4) == (20,)
    nxt, count, _last, content = struct.unpack_from("<IIQI", first, switch + 17)
    assert (nxt, count) == (2, 5)
    assert content == zlib.crc32(first[header:switch])
    assert content != zlib.crc32(first[:switch])


def test_a_delete_names_no_column() -> None:
    assert m.parse_desc(b"t()") == ("t", [])
    db = sqlite3.connect(":memory:")
    db.execute("ATTACH ':memory:' AS db_x")
    db.execute("CREATE TABLE db_x.t (k INTEGER PRIMARY KEY, v TEXT)")
    stmts = StatementCache(db, ["db_x"])
    assert stmts.get("db_x", m.DELETE, b"t()").sql is not None
    assert stmts.get("db_x", m.DELETE, b"t(v)").problem == "delete carries values"
    assert stmts.get("db_x", m.UPDATE, b"t()").problem == "update names no column"
