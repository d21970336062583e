"""A live keyed file: real B-tree inserts and deletes on the on-disk images, with
crash semantics, for the property tests.

Every operation is a set of write groups with a partial order (what the
emulated system guarantees to reach disk first); a crash during an operation
leaves any down-closed subset of its groups on disk:

insert of record r:
  D   the data record's slot
  E   the data header's keyed EOF = r + 1        (after D)
  F   the data header's FS EOF = r + 1           (after D; may lag E: damage 1)
  Kk  key k's B-tree blocks (a split appends blocks past the key-file EOF)
  C   the control block's new key-file EOF       (after every Kk: damage 3)
  (Kk without D/E: keys pointing past the data: damage 2)
delete of record r:
  Kk  key k's leaf without the entry
  M   the record's deleted mark
  (Kk without M: missing key values: damage 4; M without Kk: keys to a
   deleted record, which repair deletes too)
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from runner.procedures.keyed_file.media import (
    BLOCK_HEADER_SIZE,
    CONTROL_SIZE,
    DATA_HEADER_SIZE,
    DELETED,
    LIVE,
    SECTOR,
    Control,
    DataHeader,
    KeyDescriptor,
    encode_block,
    internal_capacity,
    leaf_capacity,
)


@dataclass
class Group:
    name: str
    after: tuple[str, ...]
    apply: Callable[[LiveFile], None]


@dataclass
class LiveFile:
    key_lengths: tuple[int, ...]
    spb: int = 1
    record_length: int = 0
    data: bytearray = field(default_factory=bytearray)
    key: bytearray = field(default_factory=bytearray)

    def __post_init__(self) -> None:
        self.record_length = self.record_length or sum(self.key_lengths) + 2
        descs, pos = [], 0
        for i, length in enumerate(self.key_lengths):
            descs.append(KeyDescriptor(pos, length, i > 0, 4 + i * self.spb))
            pos += length
        control = Control(
            self.spb, self.record_length, True, 4 + len(descs) * self.spb, 0, "", tuple(descs)
        )
        self.key = bytearray(control.encode())
        for i in range(len(descs)):
            self.key += encode_block(i + 1, 0, 0, b"", control.block_bytes)
        self.data = bytearray(DataHeader(self.record_length, 0, 0).encode())

    # -- reading the images ---------------------------------------------------
    @property
    def control(self) -> Control:
        return Control.decode(bytes(self.key[:CONTROL_SIZE]), "live.key")

    @property
    def header(self) -> DataHeader:
        return DataHeader.decode(bytes(self.data[:DATA_HEADER_SIZE]), "live.dat")

    def record(self, recno: int) -> tuple[int, bytes]:
        slot = self.record_length + 1
        at = DATA_HEADER_SIZE + recno * slot
        return self.data[at], bytes(self.data[at + 1 : at + slot])

    def value(self, payload: bytes, key_no: int) -> bytes:
        desc = self.control.keys[key_no - 1]
        return payload[desc.position : desc.position + desc.length]

    def _node(self, address: int, key_no: int) -> tuple[int, list[bytes], list[int]]:
        control = self.control
        desc = control.keys[key_no - 1]
        raw = self.key[address * SECTOR : address * SECTOR + control.block_bytes]
        _m, _o, level, count = struct.unpack_from("<2sBBH", raw)
        width = desc.width + (4 if level else 0)
        entries, children = [], []
        for i in range(count):
            at = BLOCK_HEADER_SIZE + i * width
            entries.append(bytes(raw[at : at + desc.width]))
            if level:
                children.append(int.from_bytes(raw[at + desc.width : at + width], "little"))
        return level, entries, children

    # -- computing an operation's writes --------------------------------------
    def insert(self, values: list[bytes]) -> list[Group] | None:
        """Groups that insert a record with these key values (None: duplicate primary)."""
        header, control = self.header, self.control
        recno = header.keyed_eof
        first = values[0]
        if any(e[: len(first)] == first for e in self._all_entries(1)):
            return None  # key 1 allows no duplicates: the insert is refused
        payload = b"".join(values).ljust(self.record_length, b"-")
        slot_at = DATA_HEADER_SIZE + recno * (self.record_length + 1)
        suffix = recno.to_bytes(4, "big")
        next_sector = [control.key_eof]
        groups = [
            Group("D", (), lambda f: f._write_data(slot_at, bytes((LIVE,)) + payload)),
            Group("E", ("D",), lambda f: f._set_header(keyed_eof=recno + 1)),
            Group("F", ("D",), lambda f: f._set_header(fs_eof=recno + 1)),
        ]
        keys = []
        for key_no, value in enumerate(values, start=1):
            writes = self._tree_insert(key_no, value + suffix, next_sector)
            name = f"K{key_no}"
            keys.append(name)
            groups.append(Group(name, (), lambda f, w=writes: f._write_blocks(w)))
        new_eof = next_sector[0]
        if new_eof != control.key_eof:
            groups.append(Group("C", tuple(keys), lambda f: f._set_control(key_eof=new_eof)))
        return groups

    def delete(self, recno: int) -> list[Group]:
        mark, payload = self.record(recno)
        assert mark == LIVE
        slot_at = DATA_HEADER_SIZE + recno * (self.record_length + 1)
        groups = [Group("M", (), lambda f: f._write_data(slot_at, bytes((DELETED,))))]
        for key_no in range(1, len(self.key_lengths) + 1):
            entry = self.value(payload, key_no) + recno.to_bytes(4, "big")
            writes = self._tree_delete(key_no, entry)
            groups.append(Group(f"K{key_no}", (), lambda f, w=writes: f._write_blocks(w)))
        return groups

    def apply(self, groups: list[Group], chosen: list[bool] | None = None) -> None:
        """Apply every group (chosen=None), or a crash's down-closed subset of them."""
        done: set[str] = set()
        for i, group in enumerate(groups):
            if chosen is not None and not chosen[i]:
                continue
            if all(dep in done for dep in group.after):
                group.apply(self)
                done.add(group.name)

    def close(self) -> None:
        """A clean close: the crash flag goes off."""
        self._set_control(crashed=False)

    # -- B-tree updates -------------------------------------------------------
    def _all_entries(self, key_no: int) -> list[bytes]:
        out: list[bytes] = []

        def visit(address: int) -> None:
            level, entries, children = self._node(address, key_no)
            if level == 0:
                out.extend(entries)
            for child in children:
                visit(child)

        visit(self.control.keys[key_no - 1].root)
        return out

    def _path(self, key_no: int, entry: bytes) -> list[tuple[int, int]]:
        """(address, child index taken) from the root down to the leaf for `entry`."""
        path, address = [], self.control.keys[key_no - 1].root
        while True:
            level, entries, children = self._node(address, key_no)
            if level == 0:
                path.append((address, -1))
                return path
            index = max(0, bisect.bisect_right(entries, entry) - 1)
            path.append((address, index))
            address = children[index]

    def _tree_insert(self, key_no: int, entry: bytes, next_sector: list[int]) -> dict[int, bytes]:
        control = self.control
        desc = control.keys[key_no - 1]
        writes: dict[int, bytes] = {}
        path = self._path(key_no, entry)
        leaf_addr = path[-1][0]
        _lvl, entries, _c = self._node(leaf_addr, key_no)
        bisect.insort(entries, entry)
        items: list[tuple[bytes, int | None]] = [(e, None) for e in entries]
        level, address = 0, leaf_addr
        depth = len(path) - 1
        while True:
            cap = leaf_capacity(control, desc) if level == 0 else internal_capacity(control, desc)
            if len(items) <= cap:
                writes[address] = self._encode(key_no, level, items, control)
                return writes
            mid = len(items) // 2
            left, right = items[:mid], items[mid:]
            if depth == 0:  # the root splits: it stays put and gains two new children
                a, b = next_sector[0], next_sector[0] + self.spb
                next_sector[0] += 2 * self.spb
                writes[a] = self._encode(key_no, level, left, control)
                writes[b] = self._encode(key_no, level, right, control)
                writes[address] = self._encode(
                    key_no, level + 1, [(left[0][0], a), (right[0][0], b)], control
                )
                return writes
            new = next_sector[0]
            next_sector[0] += self.spb
            writes[address] = self._encode(key_no, level, left, control)
            writes[new] = self._encode(key_no, level, right, control)
            depth -= 1
            parent, index = path[depth]
            _l, p_entries, p_children = self._node(parent, key_no)
            items = list(zip(p_entries, p_children, strict=True))
            items.insert(index + 1, (right[0][0], new))
            level, address = level + 1, parent

    def _tree_delete(self, key_no: int, entry: bytes) -> dict[int, bytes]:
        leaf = self._path(key_no, entry)[-1][0]
        _l, entries, _c = self._node(leaf, key_no)
        entries.remove(entry)  # ValueError: the entry is not where the tree says
        return {leaf: self._encode(key_no, 0, [(e, None) for e in entries], self.control)}

    @staticmethod
    def _encode(
        key_no: int, level: int, items: list[tuple[bytes, int | None]], control: Control
    ) -> bytes:
        payload = b"".join(
            e + (c.to_bytes(4, "little") if c is not None else b"") for e, c in items
        )
        return encode_block(key_no, level, len(items), payload, control.block_bytes)

    # -- raw writes -------------------------------------------------------------
    def _write_data(self, at: int, raw: bytes) -> None:
        if len(self.data) < at + len(raw):
            self.data.extend(bytes(at + len(raw) - len(self.data)))
        self.data[at : at + len(raw)] = raw

    def _set_header(self, **changes: int) -> None:
        h = self.header
        new = DataHeader(
            h.record_length, changes.get("fs_eof", h.fs_eof), changes.get("keyed_eof", h.keyed_eof)
        )
        self.data[:DATA_HEADER_SIZE] = new.encode()

    def _set_control(self, **changes: object) -> None:
        self.key[:CONTROL_SIZE] = self.control.with_(**changes).encode()

    def _write_blocks(self, writes: dict[int, bytes]) -> None:
        for address, raw in writes.items():
            at = address * SECTOR
            if len(self.key) < at + len(raw):
                self.key.extend(bytes(at + len(raw) - len(self.key)))
            self.key[at : at + len(raw)] = raw

    def save(self, data_path: Path, key_path: Path) -> None:
        data_path.parent.mkdir(parents=True, exist_ok=True)
        data_path.write_bytes(bytes(self.data))
        key_path.write_bytes(bytes(self.key))
