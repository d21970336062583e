"""keyed.count: count the valid records the way a program reading in key order sees them."""

from __future__ import annotations

from runner.contract import Output, StepContext, declare_outputs
from runner.errors import MediaError
from runner.procedures.keyed_file.actions.base import TEMPLATES, KeyedAction
from runner.procedures.keyed_file.btree import walk
from runner.procedures.keyed_file.keyinfo import LeafChecker
from runner.procedures.keyed_file.records import valid_map


class Count(KeyedAction):
    name = "keyed.count"
    summary = "count the valid records by reading the file in key order"
    destructive = False
    outputs = declare_outputs(
        count=Output("integer", "records counted in key order"),
        valid_records=Output("integer", "valid records in the data"),
        agrees=Output("boolean", "whether the two agree"),
    )

    def run(self, ctx: StepContext) -> None:
        key_no = int(self.args.get("key", 1))
        with self.opened(ctx) as (data, key, info):
            if key_no > len(info.control.keys):
                raise MediaError(
                    f"{info.key_name} has {len(info.control.keys)} key(s); "
                    f"there is no key {key_no}",
                    fix="set `key` to a key number the file has",
                )
            valid = valid_map(data, info.header, info.data_name, ctx.progress)
            valid_records = valid.count(1)
            desc = info.control.keys[key_no - 1]
            checker = LeafChecker(valid, key_no, desc.length, info.control.block_bytes, None)
            walk(key, info, key_no, checker, ctx.progress)
            checker.flush()
            count = checker.valid_values
        ctx.note(f"{info.data_name}: {count:,} valid records read in key {key_no} order")
        if count != valid_records:
            ctx.warn(
                f"reading in key {key_no} order finds {count:,} records, the data file "
                f"holds {valid_records:,} valid records: run keyed.repair, then "
                "keyed.reload"
            )
        ctx.output(count=count, valid_records=valid_records, agrees=count == valid_records)
        if self.args.get("report"):
            ctx.report(
                f"{TEMPLATES}/count.txt.j2",
                self.args["report"],
                {
                    "data_file": info.data_name,
                    "key_file": info.key_name,
                    "key": key_no,
                    "count": count,
                    "valid_records": valid_records,
                    "now": ctx.now.isoformat(timespec="seconds"),
                },
            )
