"""Finding and verifying the files of a log set before anything is applied.

Every file's header is checked (right set, right number, same logging cycle)
and every file the log continued after is verified whole against its switch
record, so a damaged or foreign file in the middle of the set is refused up
front and the databases are left untouched. Only the newest file is read
record by record, where a checksum or sequence error means the end of the log.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field

from runner.engine.media import MediaStore
from runner.errors import MediaError
from runner.procedures.roll_forward.media import (
    CYCLE_START,
    RECORD,
    RECORD_SIZE,
    CycleStart,
    FileHeader,
    log_name,
    parse_cycle,
    read_header,
    verify_closed_file,
)


@dataclass
class LogSet:
    name: str
    headers: dict[int, FileHeader]
    cycle: CycleStart
    switches: dict[int, int] = field(default_factory=dict)  # file -> seq of its switch record

    @property
    def logging_id(self) -> int:
        return self.cycle.logging_id

    @property
    def last_file(self) -> int:
        return max(self.headers)

    def missing(self) -> list[int]:
        """Numbers absent between 1 and the newest present file."""
        return [n for n in range(1, self.last_file) if n not in self.headers]

    def rel(self, file_no: int) -> str:
        return log_name(self.name, file_no)


def present_files(media: MediaStore, set_name: str) -> list[int]:
    pattern = re.compile(rf"^{re.escape(set_name)}\.([1-9][0-9]{{0,8}})\.log$")
    numbers = []
    for entry in media.listdir("logs"):
        match = pattern.match(entry)
        if match:
            numbers.append(int(match.group(1)))
    return sorted(numbers)


def scan_log_set(media: MediaStore, set_name: str) -> LogSet:
    """Check every present file of the set; MediaError with a fix on the first problem."""
    numbers = present_files(media, set_name)
    if not numbers:
        raise MediaError(
            f"no file of log set {set_name!r} in logs/ (looked for logs/{set_name}.<n>.log)",
            fix="check the log_set argument, or copy the log files into logs/",
        )
    if numbers[0] != 1:
        raise MediaError(
            f"the first file of log set {set_name!r} ({log_name(set_name, 1)}) is missing; "
            "it holds the start of the logging cycle",
            fix=f"supply {log_name(set_name, 1)}",
        )
    headers: dict[int, FileHeader] = {}
    for number in numbers:
        rel = log_name(set_name, number)
        with media.open(rel) as handle:
            header = read_header(handle, rel)
        if header.set_name != set_name or header.file_no != number:
            raise MediaError(
                f"{rel} is file {header.file_no} of log set {header.set_name!r}, "
                f"not file {number} of {set_name!r}",
                fix="give the file its right name or remove it from logs/",
            )
        headers[number] = header
    first = headers[1]
    for number, header in headers.items():
        if header.logging_id != first.logging_id:
            raise MediaError(
                f"{log_name(set_name, number)} belongs to another logging cycle "
                f"(logging id {header.logging_id}, the set's first file has {first.logging_id})",
                fix="supply the file of this cycle, or remove the foreign file from logs/",
            )
    cycle = _read_cycle(media, set_name, first)
    logset = LogSet(set_name, headers, cycle)
    for number in numbers[:-1]:
        rel = log_name(set_name, number)
        size = media.path(rel).stat().st_size
        with media.open(rel) as handle:
            _next, switch_seq = verify_closed_file(handle, rel, headers[number], size)
        logset.switches[number] = switch_seq
        following = headers.get(number + 1)
        if following is not None and following.first_seq != switch_seq + 1:
            raise MediaError(
                f"{log_name(set_name, number + 1)} starts at record {following.first_seq} but "
                f"{rel} ends at record {switch_seq}: the log is discontinuous",
                fix="supply the matching file of this cycle",
            )
    return logset


def _read_cycle(media: MediaStore, set_name: str, header: FileHeader) -> CycleStart:
    rel = log_name(set_name, 1)
    with media.open(rel) as handle:
        handle.seek(header.size)
        head = handle.read(RECORD_SIZE)
        if len(head) < RECORD_SIZE:
            raise MediaError(f"{rel} holds no records", fix=f"supply an intact {rel}")
        crc, length, seq, rtype = RECORD.unpack(head)
        payload = handle.read(length) if length < (1 << 20) else b""
    if len(payload) != length or zlib.crc32(head[4:] + payload) != crc:
        raise MediaError(
            f"{rel}: the cycle-start record is damaged (checksum)",
            fix=f"supply an intact copy of {rel}",
        )
    if rtype != CYCLE_START or seq != header.first_seq:
        raise MediaError(
            f"{rel} does not begin with a cycle-start record", fix=f"supply the right {rel}"
        )
    cycle = parse_cycle(payload, rel)
    if cycle.logging_id != header.logging_id:
        raise MediaError(
            f"{rel}: cycle-start logging id {cycle.logging_id} does not match the file header "
            f"({header.logging_id})",
            fix=f"supply an intact copy of {rel}",
        )
    return cycle
