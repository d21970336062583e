"""The storage-class check of `catalog_shape_checks` (the preflight's scan of every
row) flags a row exactly when one of its values is of a class its column's
declared type does not admit, whatever the values and whatever the table on
disk declares: SQLite's own `typeof()` of each stored value is the oracle,
compared with the affinity rules."""

from __future__ import annotations

import sqlite3
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from runner.contract import catalog_shape_checks

COLUMNS = (("i", "INTEGER"), ("t", "TEXT"), ("r", "REAL"), ("b", "BLOB"), ("n", "NUMERIC"))
DDL = "CREATE TABLE t (" + ", ".join(f"{name} {kind}" for name, kind in COLUMNS) + ");"
#: what each declared type admits besides NULL (None: anything)
ADMITS: dict[str, set[str] | None] = {
    "INTEGER": {"integer"},
    "TEXT": {"text"},
    "REAL": {"real", "integer"},
    "BLOB": None,
    "NUMERIC": None,
}

values = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=8),
    st.binary(max_size=8),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(*[values] * len(COLUMNS)), min_size=1, max_size=4))
def test_a_row_is_flagged_exactly_when_a_value_has_a_class_its_column_does_not_admit(
    rows: list[tuple[Any, ...]],
) -> None:
    db = sqlite3.connect(":memory:")
    try:
        db.execute("ATTACH DATABASE ':memory:' AS catalog")  # no file: nothing is cached
        # untyped columns store every value as given (no affinity converts it),
        # as a catalog written by another tool or schema may hold them
        db.execute(f"CREATE TABLE catalog.t ({', '.join(name for name, _ in COLUMNS)})")
        db.executemany(f"INSERT INTO catalog.t VALUES ({', '.join('?' * len(COLUMNS))})", rows)
        stored = db.execute(
            "SELECT rowid, " + ", ".join(f"typeof({name})" for name, _ in COLUMNS) + " FROM t"
        ).fetchall()
        wrong = [
            (rowid, name, kind)
            for rowid, *kinds in stored
            for (name, declared), kind in zip(COLUMNS, kinds, strict=True)
            if kind != "null" and (admits := ADMITS[declared]) is not None and kind not in admits
        ]
        checks = catalog_shape_checks(db, DDL, what="c", fix="mend it")
        failed = [c.detail for c in checks if not c.ok]
        if not wrong:
            assert failed == []
        else:
            [detail] = failed
            rowid = int(detail.split("row ")[1].split(":")[0])
            first = next((name, kind) for row, name, kind in wrong if row == rowid)
            assert f"column {first[0]} holds {first[1]} " in detail, (detail, wrong)
    finally:
        db.close()
