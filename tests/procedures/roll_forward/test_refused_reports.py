"""A step refused by the loss budget leaves no report behind that describes work it
never committed (its summary would say "transactions applied: N")."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.procedures.roll_forward.conftest import run_playbook


def test_a_refused_recover_step_leaves_no_summary_or_user_files(
    make_site: Callable[..., Path],
) -> None:
    site = make_site()
    refused = run_playbook(site, "allowed_lost_transactions=0")
    assert refused.exit_code == 3, refused.output
    assert "nothing of this step was committed" in refused.output
    assert "run again with --param allowed_lost_transactions=" in refused.output
    reports = sorted(p.relative_to(site).as_posix() for p in site.rglob("reports/**/*.txt"))
    assert reports == ["reports/rollforward/flags-before.txt"]  # the step before it, committed
    followed = run_playbook(site, "allowed_lost_transactions=20")
    assert followed.exit_code == 0, followed.output
    assert (site / "reports" / "rollforward" / "summary.txt").is_file()
