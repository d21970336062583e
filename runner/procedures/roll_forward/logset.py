"""Finding and verifying the files of a log set before anything is applied.

Every file's header is checked (right set, right number, same logging cycle)
and every file the log continued after is verified whole against its switch
record, so a damaged or foreign file in the middle of the set is refused up
front and the databases are left untouched. Only the newest file is read
record by record, where a checksum or sequence error means the end of the log;
whether the restart after the failure ended it with a crash record is noted.
A roll forward from an online backup starts in a later file: the files before
it are not needed, are not looked at, and may be gone.
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
    CrashRecord,
    CycleStart,
    FileHeader,
    log_name,
    parse_cycle,
    read_crash_trailer,
    read_header,
    verify_closed_file,
)


@dataclass
class LogSet:
    name: str
    headers: dict[int, FileHeader]
    cycle: CycleStart | None  # None when the roll forward starts after file 1
    switches: dict[int, int] = field(default_factory=dict)  # file -> seq of its switch record
    crash: CrashRecord | None = None  # the restart's record ending the newest file
    first_file: int = 1  # the first file needed (later than 1 from an online backup)

    @property
    def logging_id(self) -> int:
        return self.headers[self.first_file].logging_id

    @property
    def last_file(self) -> int:
        return max(self.headers)

    def missing(self) -> list[int]:
        """Numbers absent between the first needed and the newest present file."""
        return [n for n in range(self.first_file, self.last_file) if n not in self.headers]

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


def scan_log_set(media: MediaStore, set_name: str, first_file: int = 1) -> LogSet:
    """Check every present file of the set from `first_file` on (earlier ones are not
    needed: an online backup holds their work); MediaError with a fix on the first
    problem."""
    numbers = [n for n in present_files(media, set_name) if n >= first_file]
    if not numbers:
        raise MediaError(
            f"no file of log set {set_name!r} in logs/ (looked for logs/{set_name}.<n>.log"
            + (f", n >= {first_file}" if first_file > 1 else "")
            + ")",
            fix="check the log_set argument, or copy the log files into logs/",
        )
    if first_file > 1 and numbers[0] != first_file:
        raise MediaError(
            f"{log_name(set_name, first_file)} is missing; the online backup copy was taken "
            "while it was the log file in use, so the roll forward starts in it",
            fix=f"supply {log_name(set_name, first_file)}",
        )
    if numbers[0] != 1 and first_file == 1:
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
    first = headers[first_file]
    for number, header in headers.items():
        if header.logging_id != first.logging_id:
            raise MediaError(
                f"{log_name(set_name, number)} belongs to another logging cycle "
                f"(logging id {header.logging_id}, the set's first file has {first.logging_id})",
                fix="supply the file of this cycle, or remove the foreign file from logs/",
            )
    cycle = _read_cycle(media, set_name, first) if first_file == 1 else None
    logset = LogSet(set_name, headers, cycle, first_file=first_file)
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
    newest = log_name(set_name, numbers[-1])
    with media.open(newest) as handle:
        logset.crash = read_crash_trailer(
            handle, headers[numbers[-1]], media.path(newest).stat().st_size
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
