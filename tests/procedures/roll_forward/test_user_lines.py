"""The per-user files' CSV lines built by SQL are exactly what csv.writer writes."""

from __future__ import annotations

import csv
import io
import sqlite3

from runner.procedures.roll_forward.batches import time_text
from runner.procedures.roll_forward.catalog import RECOVERY_DDL, RECOVERY_INSERT
from runner.procedures.roll_forward.reporting import _PLAIN_LINE, _USER_FIELDS, _user_blocks

PROGRAMS = ["PLAIN", "with,comma", 'with "quote"', "line\nbreak", "carriage\rreturn", "ünïcode", ""]
DETAILS = [None, "simple detail", "a, b", 'say "x"', "multi\nline", "cr\r", ""]


def test_sql_lines_match_csv_writer() -> None:
    db = sqlite3.connect(":memory:")
    db.execute("ATTACH ':memory:' AS db_x")
    db.execute(RECOVERY_DDL.format(schema="db_x."))
    rows = []
    txn = 0
    for program in PROGRAMS:
        for detail in DETAILS:
            txn += 1
            status, reason = ("applied", None) if detail is None else ("suppressed", "failed")
            end_us = None if txn % 5 == 0 else 1_767_225_600_123_456 + txn
            end_record = None if end_us is None else txn * 10 + 3
            begin_us = 1_767_225_600_000_999 + txn
            rows.append(
                (7, txn, "u1", program, status, reason, detail, begin_us, end_us, txn * 10,
                 end_record, txn % 4, time_text(begin_us), end_us and time_text(end_us))
            )  # fmt: skip
    db.executemany(RECOVERY_INSERT.format(schema="db_x."), rows)
    expected = io.StringIO()
    writer = csv.writer(expected, lineterminator="\n")
    for row in db.execute(
        f"SELECT {', '.join(_USER_FIELDS)} FROM db_x.rf_recovery ORDER BY first_record"
    ):
        writer.writerow(row)
    scan = db.execute(
        f"SELECT user, {_PLAIN_LINE}, txn FROM db_x.rf_recovery WHERE logging_id = ? "
        "ORDER BY first_record",
        (7,),
    )
    got = "".join(_user_blocks(db, "db_x", 7, scan))
    assert got == expected.getvalue()
    plain = db.execute(f"SELECT count(*) FROM db_x.rf_recovery WHERE ({_PLAIN_LINE}) IS NOT NULL")
    assert plain.fetchone()[0] > 0  # the SQL path is taken, not only the fallback
