"""The domain note's worked example, figure for figure.

Keyed EOF 1,200 and FS EOF 1,100; key 1 has 1,215 values, key 2 has 1,209;
key 1's largest block address is 300 with 8 sectors per block while the
key-file EOF says 296. Repair: FS EOF -> 1,200, key-file EOF -> 308 (at least),
15 dangling values deleted from each key, leaving 1,200 and 1,194, and a
reload warning because 1,194 differs from 1,200.
"""

from __future__ import annotations

from tests.procedures.keyed_file.conftest import PLAYBOOK, SiteMaker, recover, steps
from tests.procedures.keyed_file.readback import keys_match_records, read_pair

EXAMPLE = dict(
    records=1_200,
    keys=2,
    key_lengths=(42, 42),
    deleted_percent=0.0,
    damage=("eof", "dangling", "split", "missing"),
    eof_behind=100,
    dangling=15,
    missing=6,
)


def test_worked_example(make_site: SiteMaker) -> None:
    site, _scenario = make_site(**EXAMPLE)
    files = site / "files"
    damaged = read_pair(files / "customers.dat", files / "customers.key")
    assert (damaged.keyed_eof, damaged.fs_eof) == (1_200, 1_100)
    assert [len(damaged.trees[k]) for k in (1, 2)] == [1_215, 1_209]
    assert max(damaged.blocks[1]) == 300 and damaged.spb == 8 and damaged.key_eof == 296
    assert damaged.crashed

    result = recover("run", PLAYBOOK, "--site", site, "--yes")
    assert result.exit_code == 0, result.output
    repair = steps(site)["repair"]
    out = repair["outputs"]
    assert out["fs_eof_reset"] and out["keyed_eof"] == 1_200
    assert out["key_eof"] == 296 and out["key_eof_after"] >= 308
    assert out["key_eof_after"] == 308  # key 1's block at 300 is the largest of all
    assert out["dangling_per_key"] == [15, 15]
    assert out["key_counts"] == [1_200, 1_194]
    assert out["reload_needed"] is True and out["missing_keys"] == 6
    assert any(n["level"] == "warning" and "must be reloaded" in n["text"] for n in repair["notes"])

    report = (site / "reports" / "keyed-repair.txt").read_text()
    for line in (
        "Data file EOF damaged: FS EOF 1,100 is behind the keyed EOF 1,200; "
        "reset to keyed EOF 1,200.",
        "  sectors per key block        8",
        "  keys in the B-tree           1,215",
        "  keys in the B-tree           1,209",
        "  largest key block address    300",
        "Key file EOF damaged: key-file EOF 296 is before the end of the largest key block "
        "(300 + 8 sectors); reset to 308.",
        "Key 1: 15 key values pointing to no valid data record deleted; 1,200 remain.",
        "Key 2: 15 key values pointing to no valid data record deleted; 1,194 remain.",
        "Key counts: key 1 1,200, key 2 1,194; valid data records 1,200 (0 deleted).",
        "WARNING: the file must be reloaded (keyed.reload) to restore them.",
        "Crash flag reset; last reset recorded as 2026-01-02T03:04:05+00:00 by recover",
    ):
        assert line in report, line
    # the report lists the actions in the note's order
    order = [
        "Data file EOF",
        "B-tree levels",
        "Key file EOF",
        "Key 1: 15",
        "Key counts",
        "WARNING",
        "Crash flag reset",
    ]
    positions = [report.index(marker) for marker in order]
    assert positions == sorted(positions)

    # the conditional reload ran and restored the 6 missing key values
    ran = steps(site)
    assert ran["reload"]["state"] == "done"
    assert ran["count"]["outputs"]["count"] == 1_200
    reloaded = read_pair(files / "customers.dat", files / "customers.key")
    assert [len(reloaded.trees[k]) for k in (1, 2)] == [1_200, 1_200]
    assert keys_match_records(reloaded)
