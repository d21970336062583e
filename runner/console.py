"""Text an operator reads: plans, run results and status, rendered plainly."""

from __future__ import annotations

from typing import Any

from runner.engine.journal import RunState, StepState
from runner.engine.plan import PlanResult, PriorRun, Verdict
from runner.engine.session import StepOutcome

MARKS = {
    StepState.DONE: "ok",
    StepState.SKIPPED: "--",
    StepState.FAILED: "!!",
    StepState.REFUSED: "NO",
    StepState.PENDING: "..",
    StepState.RUNNING: ">>",
    StepState.INTERRUPTED: "!!",
}


def _fmt_changes(changes: dict[str, dict[str, int]]) -> list[str]:
    return [
        f"{target}: {what}: {count:,}"
        for target, whats in sorted(changes.items())
        for what, count in sorted(whats.items())
    ]


def _earlier(count: int) -> str:
    """A step resumed after an interruption counts what its first attempt
    committed too; say how much of the figure that is."""
    return f" ({count:,} of them committed before the interruption)" if count else ""


def describe_step(outcome: StepOutcome, *, planning: bool, show_error: bool = True) -> list[str]:
    rec = outcome.record
    status = "done already" if outcome.already else rec.state
    if planning and rec.state == StepState.DONE and not outcome.already:
        status = "would run"
    flag = "  [destructive]" if outcome.destructive else ""
    mark = "ok" if status == "would run" else MARKS.get(rec.state, "  ")
    timing = f"  {rec.seconds:.2f}s" if rec.seconds and not planning else ""
    lines = [f"[{mark}] {rec.step_id}: {rec.action}{flag}  {status}{timing}"]
    if outcome.already:
        return lines
    for check in outcome.checks:
        detail = f" ({check.detail})" if check.detail else ""
        lines.append(f"      {'ok  ' if check.ok else 'FAIL'} {check.name}{detail}")
        if not check.ok and check.fix:
            lines.append(f"           fix: {check.fix}")
    verb = "would change" if planning else "changed"
    before = outcome.before
    for target, whats in sorted(rec.changes.items()):
        for what, count in sorted(whats.items()):
            done = before.changes.get(target, {}).get(what, 0) if before else 0
            lines.append(f"      {verb} {target}: {what}: {count:,}{_earlier(done)}")
    for line in rec.media:
        if line.split(" ")[1] in rec.reports:
            continue  # shown as a report below
        lines.append(f"      {'would ' if planning else ''}{line}")
    for path in rec.reports:
        lines.append(f"      report {'would be written to' if planning else 'written to'} {path}")
    for unit, count in sorted(rec.loss.items()):
        done = before.loss.get(unit, 0) if before else 0
        lines.append(f"      DATA LOSS: {count:,} {unit}{_earlier(done)}")
    if rec.loss_examples:
        shown = rec.loss_examples[:10]
        more = len(rec.loss_examples) - len(shown)
        lines.append("        e.g. " + ", ".join(shown) + (f" (+{more} more)" if more > 0 else ""))
    for note in rec.notes:
        prefix = "WARNING: " if note.get("level") == "warning" else ""
        lines.append(f"      {prefix}{note.get('text')}")
    if rec.error and show_error:
        lines.append(f"      error: {rec.error}")
        fixes_shown = {check.fix for check in outcome.checks if not check.ok}
        if outcome.fix and outcome.fix not in fixes_shown:
            lines.append(f"           fix: {outcome.fix}")
    return lines


def describe_plan(plan: PlanResult) -> str:
    request = plan.request
    lines = [
        f"Plan for {request.playbook.name} ({request.playbook.path})",
        f"site: {request.site.root}",
        "params: " + (", ".join(f"{k}={v!r}" for k, v in request.params.items()) or "none"),
    ]
    if request.selection is not None:
        lines.append("steps selected: " + ", ".join(request.selection))
    if plan.run_state == PriorRun.DONE:
        lines.append(
            "This playbook already ran to completion with these params: "
            "`recover run` would do nothing (use --new-run to start over)."
        )
    elif plan.run_state == PriorRun.RESUMABLE:
        lines.append("An interrupted run exists: `recover run` would resume it.")
    elif plan.repeats:
        lines.append(plan.repeats)
    lines.append("")
    for outcome in plan.outcomes:
        lines += describe_step(outcome, planning=True)
    lines.append("")
    lines += plan.loss.describe()
    pending = plan.destructive_pending()
    verdict = {
        Verdict.OK: "would run"
        + (
            f"; {len(pending)} destructive step(s) need confirmation (interactive yes, or --yes)"
            if pending
            else ""
        ),
        Verdict.COMPLETE: "nothing to do",
        Verdict.FAILED: "would FAIL: fix the failures above first",
        Verdict.REFUSED: "would be REFUSED by a safety gate (see above)",
    }[plan.verdict]
    lines.append(f"Verdict: {verdict}. Nothing was changed.")
    return "\n".join(lines)


def describe_status(runs: list[dict[str, Any]], holder: str | None) -> str:
    lines = [f"Site locked by: {holder}" if holder else "Site is not locked."]
    if not runs:
        return "\n".join([*lines, "No runs recorded on this site yet."])
    for run in runs:
        state = run["state"]
        if state == RunState.RUNNING and not holder:
            state = "interrupted (run it again to resume)"
        lines.append("")
        lines.append(f"run {run['run_id']}  {run['playbook_name']}  {state}")
        lines.append(f"  playbook: {run['playbook']}")
        params = run.get("params") or {}
        lines.append("  params: " + (", ".join(f"{k}={v!r}" for k, v in params.items()) or "none"))
        lines.append(
            f"  started {run['started_at']}  finished {run['finished_at'] or '-'}  "
            f"by {run['user']}@{run['host']}"
        )
        if run.get("error"):
            lines.append(f"  error: {run['error']}")
        for step in run["steps"]:
            changes = "; ".join(_fmt_changes(step["changes"]))
            loss = "; ".join(f"LOSS {c:,} {u}" for u, c in step["loss"].items())
            lines.append(
                f"  [{MARKS.get(step['state'], '  ')}] {step['step_id']:<20} "
                f"{step['state']:<11} {step['seconds']:8.2f}s  tries {step['attempts']}"
                + (f"  {changes}" if changes else "")
                + (f"  {loss}" if loss else "")
            )
            if step.get("error"):
                lines.append(f"        error: {step['error']}")
            # Warnings stay in view (an URGENT tape banner, a log without a crash record).
            lines += [
                f"        warning: {note['text']}"
                for note in step.get("notes", ())
                if note.get("level") == "warning"
            ]
    return "\n".join(lines)
