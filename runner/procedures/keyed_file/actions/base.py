"""What every keyed action shares: naming and opening the pair, the shared
preconditions, the findings' report view, and media writes that survive a kill."""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar

from runner.contract import Action, Check, StepContext
from runner.errors import RecoverError, SiteError
from runner.procedures.keyed_file.keyinfo import Findings
from runner.procedures.keyed_file.media import PairInfo, read_pair_info

if TYPE_CHECKING:
    from runner.site import Site

TEMPLATES = "keyed_file"


def copy_file(source: BinaryIO, target: BinaryIO) -> None:
    """Whole-file copy, in the kernel when it can (copy_file_range), else buffered."""
    source.seek(0)
    target.flush()
    try:
        remaining = os.fstat(source.fileno()).st_size
        offset = 0
        while remaining > 0:
            done = os.copy_file_range(source.fileno(), target.fileno(), remaining, offset, offset)
            if done <= 0:
                raise OSError("copy_file_range made no progress")
            offset += done
            remaining -= done
    except (OSError, AttributeError):
        source.seek(0)
        target.seek(0)
        shutil.copyfileobj(source, target, 1 << 20)


def report_findings(ctx: StepContext, findings: Findings) -> dict[str, Any]:
    """The findings as verify's and repair's report templates read them."""
    return {**findings.view(), "now": ctx.now.isoformat(timespec="seconds")}


class KeyedAction(Action):
    """Shared argument handling: which pair, and opening it."""

    #: open a crashed file read-only (the domain's "no-check" option)
    allow_crashed: ClassVar[bool] = False
    crashed_fix: ClassVar[str] = "run keyed.repair first, or read it as it is with no_check: true"

    def paths(self, ctx: StepContext) -> tuple[str, str]:
        data = self.args.get("data_file") or ctx.site.location("data_file")
        key = self.args.get("key_file") or ctx.site.location("key_file")
        if data == key:
            raise SiteError(
                f"data_file and key_file are both {data!r}",
                fix="name the .dat and the .key file of the pair",
            )
        return data, key

    def no_check(self) -> bool:
        return self.allow_crashed or bool(self.args.get("no_check", False))

    @contextlib.contextmanager
    def opened(
        self, ctx: StepContext, *, no_check: bool | None = None
    ) -> Iterator[tuple[BinaryIO, BinaryIO, PairInfo]]:
        data_rel, key_rel = self.paths(ctx)
        if no_check is None:
            no_check = self.no_check()
        with ctx.media.open(data_rel) as data, ctx.media.open(key_rel) as key:
            info = read_pair_info(data, key, data_rel, key_rel, no_check=no_check)
            yield data, key, info

    def databases(self, site: Site) -> dict[str, str]:
        """None: a keyed file has no catalog; every read and write goes through ctx.media."""
        return {}

    def preflight(self, ctx: StepContext) -> Iterable[Check]:
        """The pair is named, and both files exist and open (crashed or not: the
        repair resets the flag), before a run's first step. A pair in the middle
        of a reload's swap (a `.new` file beside it) is left to the resumed
        reload, which completes the swap."""
        try:
            data_rel, key_rel = self.paths(ctx)
        except SiteError as exc:
            return [Check("keyed file named", False, exc.message, exc.fix)]
        if ctx.state.get("phase") == "built" or any(
            ctx.media.exists(rel + ".new") for rel in (data_rel, key_rel)
        ):
            return []
        checks = [
            check
            for check in KeyedAction.shared_checks(self, ctx)
            if check.name != "crash flag clear"
        ]
        return checks

    def shared_checks(self, ctx: StepContext) -> Iterable[Check]:
        """The pair is named, both files exist and open, and (unless the action
        reads a crashed file as it is) the crash flag is clear."""
        try:
            data_rel, key_rel = self.paths(ctx)
        except SiteError as exc:
            yield Check("keyed file named", False, exc.message, exc.fix)
            return
        present = True
        for what, rel in (("data file", data_rel), ("key file", key_rel)):
            found = ctx.media.exists(rel)
            present &= found
            yield Check(
                f"{what} {rel} exists",
                found,
                "" if found else "missing",
                fix=f"put the file at {rel} under the site, or name the pair's files relative "
                "to the site (with the shipped playbook: --param data_file=PATH --param "
                "key_file=PATH) and check --site",
            )
        if not present:
            return
        try:
            with self.opened(ctx, no_check=True) as (_data, _key, info):
                crashed = info.control.crashed
        except RecoverError as exc:
            yield Check("keyed file opens", False, exc.message, exc.fix)
            return
        yield Check("keyed file opens", True)
        if not self.no_check():
            yield Check(
                "crash flag clear",
                not crashed,
                f"{data_rel} is marked crashed (it was open when the system failed) and "
                "cannot be opened normally"
                if crashed
                else "",
                fix=self.crashed_fix,
            )

    def user(self, ctx: StepContext) -> str:
        if ctx.state.get("user"):
            return str(ctx.state["user"])
        if self.args.get("user"):
            return str(self.args["user"])
        try:
            return getpass.getuser()
        except (OSError, KeyError):
            return "recover"
