"""Plans of one site take turns (a rehearsal holds SQLite's write lock on the
catalogs it changes); plans of different sites do not wait for each other."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from runner.engine.lock import one_plan_at_a_time


def _second_waits(first: Path, second: Path) -> float:
    """Seconds the second plan waited while the first held its turn for 0.5 s."""
    holding = threading.Event()
    waited: list[float] = []

    def other() -> None:
        holding.wait()
        started = time.monotonic()
        with one_plan_at_a_time(second):
            waited.append(time.monotonic() - started)

    thread = threading.Thread(target=other)
    thread.start()
    with one_plan_at_a_time(first):
        holding.set()
        time.sleep(0.5)
    thread.join(5)
    return waited[0]


def test_a_second_plan_of_the_same_site_waits_for_the_first(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    assert _second_waits(site, site) >= 0.3


def test_plans_of_other_sites_do_not_wait(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert _second_waits(tmp_path / "a", tmp_path / "b") < 0.3


def test_the_turn_writes_nothing_in_the_site(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    with one_plan_at_a_time(site):
        pass
    assert list(site.iterdir()) == []
