"""The generated workload: schemas, users, their transactions, the log.

Users work concurrently, each on its own rows (as record locks would ensure),
so applying completed transactions in commit order reproduces the original.
What that original is (the truth) is computed in scenario.py.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.procedures.roll_forward import media as m

if TYPE_CHECKING:
    from runner.procedures.roll_forward.world.generator import Options

SET_NAME = "dblog"
BASE_TIME = datetime(2026, 1, 5, 8, 0, 0, tzinfo=UTC)
DEFAULT_DATABASES = ("sales", "stock", "staff")

# database -> table -> (ddl columns after the key, indexes, value makers)
SCHEMAS: dict[str, dict[str, tuple[str, list[str]]]] = {
    "sales": {
        "customers": ("name TEXT NOT NULL, city TEXT, balance INTEGER NOT NULL", ["city"]),
        "orders": (
            "customer INTEGER NOT NULL, placed TEXT, amount INTEGER, status TEXT",
            ["customer", "placed"],
        ),
    },
    "stock": {
        "items": ("name TEXT NOT NULL, qty INTEGER NOT NULL, price INTEGER", ["name"]),
        "moves": ("item INTEGER NOT NULL, qty INTEGER, at TEXT, note TEXT", ["item"]),
    },
    "staff": {
        "people": ("name TEXT NOT NULL, dept TEXT, salary INTEGER", ["dept"]),
        "timesheets": ("person INTEGER NOT NULL, day TEXT, minutes INTEGER", ["person, day"]),
    },
    "audit": {
        "events": ("kind TEXT NOT NULL, subject TEXT, at TEXT", ["kind"]),
    },
}
PROGRAMS = {"sales": "ORDENTRY", "stock": "STOCKUPD", "staff": "PAYROLL", "audit": "AUDITLOG"}
CITIES = ["Paris", "Lyon", "Oslo", "Turin", "Porto", "Ghent", "Basel", None]


def columns(db: str, table: str) -> list[str]:
    return [c.split()[0] for c in SCHEMAS[db][table][0].split(", ")]


def make_values(rng: random.Random, db: str, table: str, key: int, when: datetime) -> list[Any]:
    day = when.date().isoformat()
    if table == "customers":
        return [f"customer {key}", rng.choice(CITIES), rng.randint(0, 90_000)]
    if table == "orders":
        return [
            rng.randint(1, 500),
            when.isoformat(timespec="seconds"),
            rng.randint(1, 9_999),
            rng.choice(["new", "paid", "held"]),
        ]
    if table == "items":
        return [f"item-{key}", rng.randint(0, 400), rng.choice([None, rng.randint(1, 900)])]
    if table == "moves":
        return [
            rng.randint(1, 300),
            rng.randint(-50, 50),
            when.isoformat(timespec="seconds"),
            rng.choice(["", "recount", "damaged", "transfer naïve ü"]),
        ]
    if table == "people":
        return [f"person {key}", rng.choice(["ops", "dev", "hr", None]), rng.randint(2000, 9000)]
    if table == "timesheets":
        return [rng.randint(1, 200), day, rng.randint(0, 600)]
    return [
        rng.choice(["login", "grant", "revoke"]),
        f"subject {key}",
        when.isoformat(timespec="seconds"),
    ]


@dataclass
class TxnPlan:
    txn: int
    user: int
    db: str
    calls: list[tuple[int, str, int, list[str], list[Any]]]  # type, table, key, cols, values
    begin_us: int = 0
    end_us: int | None = None
    first_seq: int = 0
    end_seq: int | None = None
    outcome: str = "open"  # open | committed | rolled_back


@dataclass(frozen=True)
class OnlinePoint:
    """Where the log stood at an online backup's quiesce point."""

    log_file: int  # the file in use
    log_record: int  # the last record written before the copy
    time_us: int


class KeyPool:
    """Keys a user owns: O(1) add, remove and random choice (sites can be big)."""

    def __init__(self, keys: list[int]) -> None:
        self.keys = list(keys)
        self.index = {k: i for i, k in enumerate(self.keys)}

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, key: int) -> None:
        if key not in self.index:
            self.index[key] = len(self.keys)
            self.keys.append(key)

    def discard(self, key: int) -> None:
        at = self.index.pop(key, None)
        if at is None:
            return
        last = self.keys.pop()
        if at < len(self.keys):
            self.keys[at] = last
            self.index[last] = at


@dataclass
class User:
    index: int
    name: str
    db: str
    program: str
    owned: dict[str, KeyPool] = field(default_factory=dict)
    next_key: int = 0
    txn: TxnPlan | None = None
    step: int = 0  # records of the current txn emitted (0 = begin pending)


def make_users(opt: Options, initial: dict[str, Any]) -> list[User]:
    dbs = list(SCHEMAS)
    users = []
    for i in range(opt.users):
        db = dbs[i % len(dbs)]
        user = User(i, f"u{i + 1:02d}", db, PROGRAMS[db], next_key=1_000_000 * (i + 1))
        peers = [j for j in range(opt.users) if dbs[j % len(dbs)] == db]
        share = peers.index(i)
        for table, rows in initial[db].items():
            user.owned[table] = KeyPool([k for k in rows if k % len(peers) == share])
        users.append(user)
    return users


def _plan_calls(rng: random.Random, user: User, when: datetime) -> list[Any]:
    calls = []
    tables = sorted(user.owned)
    added: dict[str, list[int]] = {t: [] for t in tables}
    deleted: set[int] = set()
    for _ in range(rng.randint(1, 6)):
        table = rng.choice(tables)
        pool, fresh = user.owned[table], added[table]
        roll = rng.random()
        cols = columns(user.db, table)
        key = None
        if roll >= 0.45 and len(pool) + len(fresh):
            at = rng.randrange(len(pool) + len(fresh))
            key = pool.keys[at] if at < len(pool) else fresh[at - len(pool)]
            if key in deleted:
                key = None
        if key is None:
            user.next_key += 1
            key = user.next_key
            calls.append((m.PUT, table, key, cols, make_values(rng, user.db, table, key, when)))
            fresh.append(key)
        elif roll < 0.85:
            picked = sorted(rng.sample(cols, rng.randint(1, len(cols))), key=cols.index)
            full = make_values(rng, user.db, table, key, when)
            calls.append((m.UPDATE, table, key, picked, [full[cols.index(c)] for c in picked]))
        else:
            calls.append((m.DELETE, table, key, [], []))
            deleted.add(key)
    return calls


def _commit_owned(user: User, plan: TxnPlan) -> None:
    for rtype, table, key, _cols, _values in plan.calls:
        if rtype == m.PUT:
            user.owned[table].add(key)
        elif rtype == m.DELETE:
            user.owned[table].discard(key)


def write_log(
    root: Path,
    opt: Options,
    rng: random.Random,
    users: list[User],
    logging_id: int,
    stamps: dict[str, tuple[int, bool]],
    cycle_start: datetime,
) -> tuple[list[TxnPlan], int, int, OnlinePoint | None]:
    est_records = opt.transactions * 6 + opt.users + 20
    writer = m.LogSetWriter(root / "logs", SET_NAME, logging_id, file_bytes=1 << 62)
    per_file = max(30, est_records // max(1, opt.files))
    clock = cycle_start
    last_timed = m.to_us(clock)

    def emit(rtype: int, payload: bytes) -> int:
        seq = writer.write(rtype, payload)
        if writer.records >= per_file:
            writer.switch()
        return seq

    emit(m.CYCLE_START, m.cycle_payload(logging_id, m.to_us(clock), stamps))
    for user in users:
        emit(
            m.IDENTITY,
            m.identity_payload(user.index + 1, user.name, user.program, 4000 + user.index),
        )
    plans: list[TxnPlan] = []
    started = 0
    # The planted chain: an order inserted by a transaction that never ends (u01's
    # program hangs), updated by a shipping program; its shipment updated later.
    hanger = users[0]
    shipper = User(opt.users, "ship01", hanger.db, "SHIPPER", next_key=99_000_000)
    emit(m.IDENTITY, m.identity_payload(opt.users + 1, shipper.name, shipper.program, 4999))
    orphan_key, ship_key = 98_000_001, 99_000_001
    planted = [
        TxnPlan(
            900_001,
            hanger.index,
            hanger.db,
            [
                (
                    m.PUT,
                    "orders",
                    orphan_key,
                    columns("sales", "orders"),
                    [7, clock.isoformat(timespec="seconds"), 120, "new"],
                )
            ],
        ),
        TxnPlan(
            900_002,
            shipper.index,
            shipper.db,
            [
                (m.UPDATE, "orders", orphan_key, ["status"], ["shipped"]),
                (
                    m.PUT,
                    "customers",
                    ship_key,
                    columns("sales", "customers"),
                    ["shipment note", None, 0],
                ),
            ],
        ),
        TxnPlan(
            900_003,
            shipper.index,
            shipper.db,
            [(m.UPDATE, "customers", ship_key, ["balance"], [5])],
        ),
    ]
    sessions = {u.index: u.index + 1 for u in users} | {shipper.index: opt.users + 1}

    def begin(plan: TxnPlan) -> None:
        plan.begin_us = m.to_us(clock)
        plan.first_seq = emit(
            m.BEGIN, m.begin_payload(plan.txn, sessions[plan.user], plan.begin_us, plan.db)
        )

    def call(plan: TxnPlan, c: tuple[int, str, int, list[str], list[Any]]) -> None:
        emit(c[0], m.call_payload(plan.txn, c[1], c[3], c[2], c[4]))

    def hang() -> None:
        begin(planted[0])
        call(planted[0], planted[0].calls[0])
        plans.append(planted[0])

    # An online backup waits for a quiesce point: no new transaction starts until
    # the open ones have ended; the hanging transaction begins after it.
    quiesce_at = opt.transactions // 2 if opt.online_backup else None
    if quiesce_at is None:
        hang()
    active: list[User] = []
    idle = list(users)
    rng.shuffle(idle)
    chain_at = max(3, opt.transactions // 3)
    if quiesce_at is not None:
        chain_at = max(quiesce_at + 2, (2 * opt.transactions) // 3)
    online: OnlinePoint | None = None
    n = 0
    while started < opt.transactions or active:
        clock += timedelta(milliseconds=rng.randint(0, 400))
        quiescing = quiesce_at is not None and online is None and started >= quiesce_at
        if quiescing and not active:
            online = OnlinePoint(writer.file_no, writer.seq - 1, m.to_us(clock))
            hang()
            continue
        if started == chain_at:
            for plan in planted[1:]:
                begin(plan)
                for c in plan.calls:
                    call(plan, c)
                plan.end_us = m.to_us(clock)
                plan.end_seq = emit(m.END, m.end_payload(plan.txn, plan.end_us))
                plan.outcome = "committed"
                last_timed = plan.end_us
                plans.append(plan)
            started += 1
            continue
        n += 1
        if n % 97 == 0:
            last_timed = m.to_us(clock)
            emit(m.TIME, m.TIME_P.pack(last_timed))
        if (
            idle
            and not quiescing
            and started < opt.transactions
            and (len(active) < opt.concurrency or not active)
        ):
            user = idle.pop(rng.randrange(len(idle)))
            started += 1
            plan = TxnPlan(started, user.index, user.db, _plan_calls(rng, user, clock))
            user.txn, user.step = plan, 0
            active.append(user)
            begin(plan)
            last_timed = plan.begin_us
            plans.append(plan)
            continue
        if not active:
            break
        user = rng.choice(active)
        current = user.txn
        assert current is not None
        plan = current
        if user.step < len(plan.calls):
            call(plan, plan.calls[user.step])
            user.step += 1
            continue
        plan.end_us = last_timed = m.to_us(clock)
        if rng.random() < 0.03:
            plan.end_seq = emit(m.ROLLBACK, m.end_payload(plan.txn, plan.end_us))
            plan.outcome = "rolled_back"
        else:
            plan.end_seq = emit(m.END, m.end_payload(plan.txn, plan.end_us))
            plan.outcome = "committed"
            _commit_owned(user, plan)
        active.remove(user)
        idle.append(user)
        user.txn = None
        if started >= opt.transactions and len(active) <= max(1, opt.concurrency // 2):
            break  # the crash: the rest stay open
    good_records = writer.seq - 1
    # The crash tail: the END of one open transaction never reached disk intact.
    victim = next((u for u in active if u.txn is not None), None)
    end_txn = victim.txn.txn if victim and victim.txn else 1
    tail = m.encode_record(writer.seq, m.END, m.end_payload(end_txn, m.to_us(clock)))
    if opt.tail == "checksum":
        bad = bytearray(tail)
        bad[-3] ^= 0x5A
        writer.raw(bytes(bad) + tail[: len(tail) // 2])
    elif opt.tail == "sequence":
        writer.raw(m.encode_record(writer.seq + 5, m.END, m.end_payload(end_txn, m.to_us(clock))))
    elif opt.tail == "torn":
        writer.raw(tail[:-4])
    if opt.crash_record:
        # The system's restart after the failure: it found the log's end and said so.
        writer.crash(m.to_us(clock + timedelta(minutes=3)), good_records)
    writer.close()
    return plans, good_records, last_timed, online
