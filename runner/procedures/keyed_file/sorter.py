"""Sorting key entries in bounded memory: spill, then sort in memory or merge runs.

Entries are fixed-width byte strings (key bytes + big-endian record number),
so plain byte order is key order. They are held in numpy arrays of dtype
`S<width>` (width bytes per entry, no object per entry), whose sort and
search compare all `width` bytes as unsigned bytes: the order of Python's
`sorted()` on the same bytes, trailing zero bytes included (tested). When
the caller knows how many entries can come at most and they fit in memory
(reload: every key's entries for the keyed EOF within the budget together),
they are kept in one array per key as they arrive and sorted in place.
Otherwise they are spilled unsorted to a temporary file as they arrive (one
per key, so all keys can be fed in one pass over the data file); when asked
for the sorted stream, a key whose entries fit the memory budget is read into
one array and sorted in place, otherwise it is cut into sorted runs that are
merged (cascading when there are very many runs).

The sorted stream comes back as blocks of whole entries (`sorted_blocks`), so
the tree builder slices leaves out of them with no Python object per entry.
The merge works a block at a time, not an entry at a time: every run lends
its buffered entries up to the smallest of the runs' last buffered entries (no
run can still hold anything below it), and those pieces, each already sorted,
are put end to end and sorted once (a merge of sorted runs).

numpy is the one dependency only this procedure has: sorting millions of
fixed-width entries is what it does in C, with a fifth of the memory a list of
bytes objects takes (about 14 bytes an entry instead of 63), so the same
budget sorts four times as many entries before anything spills.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from runner.procedures.keyed_file.records import Progress, no_progress, split

Entries = Any  # a one-dimensional numpy array of dtype S<width>, one entry per item
OUT_BLOCK = 1 << 15  # entries per block handed to the tree builder
MAX_FAN_IN = 64
SCRATCH_PREFIX = "recover-keyed-sort-"


@contextlib.contextmanager
def scratch_dir(parent: str | None = None) -> Iterator[Path]:
    """A temporary directory for sort spills, removed afterwards.

    A process killed mid-sort (kill -9, power cut) cannot remove its own, so the
    name carries the owner's pid and every new one first sweeps those whose
    owner is gone.
    """
    base = Path(parent or tempfile.gettempdir())
    for stale in base.glob(f"{SCRATCH_PREFIX}*-*"):
        pid = stale.name[len(SCRATCH_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-", dir=base) as path:
        yield Path(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def entry_cost(width: int) -> int:
    """Memory one entry takes while sorted: its bytes in a fixed-width array."""
    return width


class EntrySorter:
    """Collects one key's entries and gives them back in sorted order."""

    def __init__(
        self, width: int, memory_bytes: int, directory: Path, name: str, *, at_most: int = 0
    ) -> None:
        """`at_most`, if given, is how many entries can come at most: when the caller
        knows they fit in memory, they are kept in one array as they come (no
        spill file is written and read back); more than that spill after all."""
        self.width = width
        self.memory_bytes = memory_bytes
        self.directory = directory
        self.name = name
        self.count = 0
        self.runs = 0  # how many sorted runs the external path wrote (0 = sorted in memory)
        self._serial = 0
        self._spill_path = directory / f"{name}.spill"
        self._spill: BinaryIO | None = None
        self._kept: Entries | None = None
        if at_most:
            self._kept = _array(at_most, width)  # pages are only touched as entries come
        else:
            self._spill = open(self._spill_path, "wb")  # noqa: SIM115

    def add(self, blob: bytes | bytearray) -> None:
        """Add entries given as one blob of whole entries."""
        assert len(blob) % self.width == 0 and not self._done
        count = len(blob) // self.width
        if self._kept is not None and self.count + count > len(self._kept):
            self._spill = open(self._spill_path, "wb")  # noqa: SIM115
            self._spill.write(self._kept[: self.count].data)
            self._kept = None
        if self._kept is not None:
            self._kept[self.count : self.count + count] = np.frombuffer(blob, self._kept.dtype)
        else:
            assert self._spill is not None
            self._spill.write(blob)
        self.count += count

    @property
    def _done(self) -> bool:
        return self._spill is None and self._kept is None

    @property
    def fits_in_memory(self) -> bool:
        return self.count * entry_cost(self.width) <= self.memory_bytes

    def sorted_entries(
        self, progress: Progress[int] = no_progress, label: str = "sort"
    ) -> Iterator[bytes]:
        """The entries in byte order, one by one; call once (see `sorted_blocks`)."""
        blocks = self.sorted_blocks(progress, label)
        return itertools.chain.from_iterable(split(block, self.width) for block in blocks)

    def sorted_blocks(
        self, progress: Progress[int] = no_progress, label: str = "sort"
    ) -> Iterator[bytes]:
        """The entries in byte order, as blocks of whole entries back to back; call
        once. `progress` sees the sort as one item (in memory) or one item per sorted
        run written (external)."""
        assert not self._done
        if self._kept is None:
            assert self._spill is not None
            self._spill.close()
            self._spill = None
            if not self.fits_in_memory:
                runs = self._write_runs(progress, label)
                while len(runs) > MAX_FAN_IN:
                    runs = self._cascade(runs)
                chunk = self._reader_chunk(len(runs))
                return _merged_blocks([self._read_run(path, chunk) for path in runs])
        entries = _array(0, self.width)
        for _ in progress(range(1), 1, label):  # one sort: no finer steps to show
            entries = self._all_in_memory()
            entries.sort()
        return _blocks_of(entries)

    def _all_in_memory(self) -> Entries:
        """Every entry in one array: the kept one, or the spill file read back."""
        if self._kept is not None:
            entries, self._kept = self._kept[: self.count], None
            return entries
        with open(self._spill_path, "rb") as handle:
            entries = _read_array(handle, self.count, self.width)
        os.unlink(self._spill_path)
        return entries

    def _reader_chunk(self, readers: int) -> int:
        """Entries each run reader buffers: together they stay within half the
        budget, and the pieces they lend to one merge step within the other half."""
        return max(256, self.memory_bytes // (2 * readers * entry_cost(self.width)))

    def _write_runs(self, progress: Progress[int], label: str) -> list[Path]:
        per_run = max(1024, self.memory_bytes // entry_cost(self.width))
        paths: list[Path] = []
        expected = (self.count + per_run - 1) // per_run
        with open(self._spill_path, "rb") as handle:
            for _ in progress(range(expected), expected, f"{label}: runs"):
                entries = _read_array(handle, per_run, self.width)
                if not len(entries):
                    break
                entries.sort()
                path = self.directory / f"{self.name}.run{len(paths)}"
                with open(path, "wb") as out:
                    out.write(entries.data)
                del entries
                paths.append(path)
        os.unlink(self._spill_path)
        self.runs = len(paths)
        return paths

    def _cascade(self, runs: list[Path]) -> list[Path]:
        merged: list[Path] = []
        for start in range(0, len(runs), MAX_FAN_IN):
            group = runs[start : start + MAX_FAN_IN]
            self._serial += 1
            path = self.directory / f"{self.name}.merge{self._serial}"
            chunk = self._reader_chunk(len(group))
            with open(path, "wb") as out:
                for block in _merged_blocks([self._read_run(p, chunk) for p in group]):
                    out.write(block)
            merged.append(path)
        return merged

    def _read_run(self, path: Path, chunk: int) -> Iterator[Entries]:
        """Stream a run back, `chunk` entries at a time, deleting it once read."""
        with open(path, "rb") as handle:
            while len(part := _read_array(handle, chunk, self.width)):
                yield part
        os.unlink(path)

    def close(self) -> None:
        self._kept = None
        if self._spill is not None:
            self._spill.close()
            self._spill = None


def _array(count: int, width: int) -> Entries:
    return np.empty(count, dtype=f"S{width}")


def _read_array(handle: BinaryIO, most: int, width: int) -> Entries:
    """Up to `most` entries from `handle`, read straight into a fixed-width array
    (no second copy of the bytes)."""
    entries = _array(most, width)
    got = handle.readinto(memoryview(entries.view(np.uint8)))  # type: ignore[attr-defined]
    return entries[: (got or 0) // width]


def _blocks_of(entries: Entries) -> Iterator[bytes]:
    """`entries` (sorted) as blocks of OUT_BLOCK entries' bytes."""
    for start in range(0, len(entries), OUT_BLOCK):
        yield entries[start : start + OUT_BLOCK].tobytes()


def _last(entries: Entries) -> bytes:
    """An array's last entry with all its bytes (a numpy bytes scalar drops
    trailing zero bytes, which would not change the order but does the value)."""
    return entries[-1:].tobytes()


def _merged_blocks(runs: list[Iterator[Entries]]) -> Iterator[bytes]:
    """Merge sorted runs (each a stream of sorted arrays) into ascending blocks.

    Each step takes, from every run's buffer, the entries up to the smallest last
    buffered entry of any run: nothing still unread can sort below that bound, so
    the pieces taken hold exactly the next entries of the merged order. One sort
    of the pieces put end to end merges them, and at least one buffer is used up
    per step, so there are about as many steps as buffers read.
    """
    buffers: list[Entries] = []
    starts: list[int] = []
    readers: list[Iterator[Entries]] = []
    for run in runs:
        first = next(run, None)
        if first is not None and len(first):
            buffers.append(first)
            starts.append(0)
            readers.append(run)
    while buffers:
        bound = np.array([min(_last(buffer) for buffer in buffers)], dtype=buffers[0].dtype)
        taken = []
        for i, buffer in enumerate(buffers):
            rest = buffer[starts[i] :]
            cut = int(np.searchsorted(rest, bound, side="right")[0])
            if cut:
                taken.append(rest[:cut])
                starts[i] += cut
        merged = np.concatenate(taken)
        merged.sort(kind="stable")  # the pieces are sorted runs: a merge
        yield merged.tobytes()
        del taken, merged
        for i in reversed(range(len(buffers))):
            if starts[i] == len(buffers[i]):
                refill = next(readers[i], None)
                if refill is not None and len(refill):
                    buffers[i], starts[i] = refill, 0
                else:
                    del buffers[i], starts[i], readers[i]
