"""Benchmark: keyed-file repair and reload through the runner vs raw Python baselines.

    python bench/bench_keyed_file.py [--scale 1.0] [--memory-mb 128] [--keep DIR]

Builds a keyed file of 1 million records with 3 keys at scale 1 (and one of
twice that size, to show how time grows), crashed with all four kinds of
damage, and times in the same run:

- repair: `recover run` of a one-step keyed.repair playbook in a subprocess,
  against (a) reading both files sequentially and (b) reading them and
  decoding what any repair must look at: every record's deleted mark and every
  key entry's record number, checked against the valid records;
- reload: `recover run` of a one-step keyed.reload playbook, against reading
  the data file, writing the valid records, pulling out every key and sorting
  it with Python's sort, and writing the sorted keys.

"process" is the whole subprocess (interpreter start and imports included);
"step" is the step's own time from the journal vs the baseline's own work.
Peak RSS is each subprocess's, from wait4.
"""

from __future__ import annotations

import argparse
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import measure, recover, step_seconds  # noqa: E402

RECORDS_AT_SCALE_1 = 1_000_000
KEYS = 3
DAMAGE = "eof,dangling,split,missing"
ARGS = "data_file: files/customers.dat, key_file: files/customers.key"
PLAYBOOKS = {
    "repair": f"  - {{id: repair, action: keyed.repair, args: {{{ARGS}}}}}\n",
    "reload": f"  - {{id: reload, action: keyed.reload, args: {{{ARGS}, memory_mb: MEMORY}}}}\n",
}
BASELINES = {"repair": ("read", "check"), "reload": ("sort",)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="size multiplier (1 = 1M)")
    parser.add_argument("--memory-mb", type=int, default=128, help="reload's sort budget")
    parser.add_argument("--keep", type=Path, help="build the sites here and keep them")
    parser.add_argument("--baseline", nargs=2, metavar=("OP", "SITE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.baseline:
        return _baseline(args.baseline[0], Path(args.baseline[1]))
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-keyed-"))
    work.mkdir(parents=True, exist_ok=True)
    records = max(2_000, int(RECORDS_AT_SCALE_1 * args.scale))
    try:
        rows = [_measure(work, n, args.memory_mb) for n in (records, 2 * records)]
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    _print(rows, args.memory_mb)
    return 0


def _measure(work: Path, records: int, memory_mb: int) -> dict[str, object]:
    site = work / f"keyed-{records}"
    shutil.rmtree(site, ignore_errors=True)
    started = time.perf_counter()
    options = ("--records", records, "--keys", KEYS, "--damage", DAMAGE, "--seed", 5)
    subprocess.run(
        recover("world", "keyed", site, *options),
        check=True,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    raw = work / f"keyed-{records}-raw"
    shutil.rmtree(raw, ignore_errors=True)
    shutil.copytree(site, raw)
    files = site / "files"
    size = sum(p.stat().st_size for p in files.iterdir())
    print(
        f"[{records:,}] {size / 1e6:.0f} MB generated in {time.perf_counter() - started:.1f}s",
        flush=True,
    )
    row: dict[str, object] = {"records": records, "mb": size / 1e6}
    for op in ("repair", "reload"):
        playbook = work / f"{op}.yaml"
        playbook.write_text(
            "version: 1\nname: bench-keyed\nsteps:\n"
            + PLAYBOOKS[op].replace("MEMORY", str(memory_mb))
        )
        ran = measure(recover("run", playbook, "--site", site, "--yes"))
        seconds, rss = ran.seconds, ran.rss_kib
        row[op] = {"process": seconds, "rss": rss, "step": step_seconds(site, op)}
        for name in BASELINES[op]:
            base = measure(
                [sys.executable, str(Path(__file__).resolve()), "--baseline", name, str(raw)]
            )
            total, raw_rss = base.seconds, base.rss_kib
            work_s = float((raw / f"{name}.seconds").read_text())
            row[f"raw-{name}"] = {"process": total, "rss": raw_rss, "step": work_s}
        print(
            f"[{records:,}] {op}: runner {seconds:.2f}s, step "
            f"{row[op]['step']:.2f}s, {rss / 1024:.0f} MB",
            flush=True,
        )  # type: ignore[index]
    return row


def _print(rows: list[dict[str, object]], memory_mb: int) -> None:
    print("\nprocess = whole subprocess (interpreter start and the runner's imports, ~0.35 s,")
    print("included); step = the step's journal time vs the baseline's own work.")
    print(f"reload sort budget: {memory_mb} MiB per key.\n")
    print(
        f"{'records':>10} {'op':>7} {'baseline':>9} {'runner s':>9} {'raw s':>7} "
        f"{'ratio':>6} {'step s':>7} {'work s':>7} {'ratio':>6} {'RSS MB':>7} "
        f"{'raw RSS':>8}"
    )
    for row in rows:
        for op in ("repair", "reload"):
            mine = row[op]  # type: ignore[index]
            for name in BASELINES[op]:
                base = row[f"raw-{name}"]  # type: ignore[index]
                print(
                    f"{row['records']:>10,} {op:>7} {name:>9} {mine['process']:>9.2f} "
                    f"{base['process']:>7.2f} {mine['process'] / base['process']:>6.2f} "
                    f"{mine['step']:>7.2f} {base['step']:>7.3f} "
                    f"{mine['step'] / base['step']:>6.2f} {mine['rss'] / 1024:>7.0f} "
                    f"{base['rss'] / 1024:>8.0f}"
                )
    small, large = rows
    print()
    for op in ("repair", "reload"):
        grow = large[op]["step"] / small[op]["step"]  # type: ignore[index]
        rss = large[op]["rss"] / small[op]["rss"]  # type: ignore[index]
        print(f"{op}: 2x the records -> {grow:.2f}x the step time, {rss:.2f}x the peak RSS")
    print("targets: repair step within 2x of the raw read (+check), reload step within 2x of")
    print("the raw sort-and-write; time ~2x for 2x records; memory bounded (reload's sort")
    print("budget caps it: run with --memory-mb 32 to see RSS stay flat as records double).")


# -- raw baselines (run as subprocesses) ----------------------------------------
def _baseline(name: str, site: Path) -> int:
    data, key = site / "files" / "customers.dat", site / "files" / "customers.key"
    started = time.perf_counter()
    if name == "read":
        for path in (data, key):
            with path.open("rb") as handle:
                while handle.read(1 << 20):
                    pass
    elif name == "check":
        _read_and_check(data, key)
    else:
        _sort_and_write(data, site / "raw")
    (site / f"{name}.seconds").write_text(f"{time.perf_counter() - started:.6f}")
    return 0


def _header(handle: object) -> tuple[int, int]:
    raw = handle.read(512)  # type: ignore[attr-defined]
    _magic, _v, record_length, _fs_eof, keyed_eof = struct.unpack_from("<4sHHQQ", raw)
    return record_length + 1, keyed_eof


def _read_and_check(data: Path, key: Path) -> None:
    """Sequential read of both files, decoding every mark and every leaf entry's
    record number and checking it against the valid records (no tree, no writes)."""
    with data.open("rb") as handle:
        slot, keyed_eof = _header(handle)
        valid = bytearray()
        per = (1 << 20) // slot
        while blob := handle.read(per * slot):
            valid += blob[0::slot].translate(bytes([1, 0]) + bytes(254))
    dangling = 0
    with key.open("rb") as handle:
        control = handle.read(2048)
        spb, nkeys = struct.unpack_from("<HH", control, 8)
        lengths = [struct.unpack_from("<H", control, 64 + 16 * i + 2)[0] for i in range(nkeys)]
        size = spb * 512
        formats: dict[tuple[int, int], struct.Struct] = {}
        while (block := handle.read(size)) and len(block) == size:
            owner, level, count = block[2], block[3], struct.unpack_from("<H", block, 4)[0]
            if level or not count or not 1 <= owner <= nkeys:
                continue
            length = lengths[owner - 1]
            fmt = formats.get((length, count))
            if fmt is None:
                fmt = formats[(length, count)] = struct.Struct(">" + f"{length}xI" * count)
            recnos = fmt.unpack_from(block, 16)
            if max(recnos) >= keyed_eof:
                dangling += sum(1 for r in recnos if r >= keyed_eof or not valid[r])
            elif 0 in (flags := tuple(map(valid.__getitem__, recnos))):
                dangling += flags.count(0)


def _sort_and_write(data: Path, out_base: Path) -> None:
    """Valid records to a new file; every key pulled out, sorted, written."""
    positions = [(1, 11), (11, 23), (23, 31)]  # the generator's default key layout
    keys: list[list[bytes]] = [[] for _ in positions]
    with data.open("rb") as handle, open(f"{out_base}.dat", "wb") as out:
        slot, keyed_eof = _header(handle)
        out.write(bytes(512))
        per = (1 << 20) // slot
        recno = 0
        remaining = keyed_eof
        while remaining and (blob := handle.read(min(per, remaining) * slot)):
            remaining -= len(blob) // slot
            records = [blob[i : i + slot] for i in range(0, len(blob), slot) if blob[i] == 0]
            out.write(b"".join(records))
            for column, (a, b) in zip(keys, positions, strict=True):
                column.extend(
                    r[a:b] + (recno + j).to_bytes(4, "big") for j, r in enumerate(records)
                )
            recno += len(records)
    with open(f"{out_base}.key", "wb") as out:
        for column in keys:
            column.sort()
            out.write(b"".join(column))
            column.clear()


if __name__ == "__main__":
    raise SystemExit(main())
