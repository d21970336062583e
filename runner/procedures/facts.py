"""Write, or check, each shipped procedure's action facts file.

    python -m runner.procedures.facts           # rewrite the files that differ
    python -m runner.procedures.facts --check   # exit 1 naming each stale file

A facts file (`<procedure>.actions.json` in the procedure's schema folder)
holds what validation needs of each action: name, summary, destructive,
outputs and loss units. `recover validate` reads it instead of importing the
actions' code; the code is imported when a step is planned or run, and a file
that no longer matches the code is refused then. Run this after changing an
action's class attributes (tests/test_action_facts.py fails until you do).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from runner.contract import ActionInfo, Procedure, as_path
from runner.procedures import SHIPPED


def facts_text(procedure: Procedure) -> str:
    """The facts file's content, generated from the action classes."""
    actions = [ActionInfo.of(action).to_json() for action in procedure.action_classes()]
    document = {
        "procedure": procedure.name,
        "generated_by": "python -m runner.procedures.facts",
        "actions": actions,
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if stale")
    args = parser.parse_args(argv)
    stale = 0
    for module in SHIPPED:
        procedure: Procedure = importlib.import_module(module).PROCEDURE
        resource = procedure.facts_file()
        if resource is None:
            continue
        path = as_path(resource)
        wanted = facts_text(procedure)
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current == wanted:
            continue
        stale += 1
        if args.check:
            print(f"{path}: stale; run `python -m runner.procedures.facts`", file=sys.stderr)
        else:
            path.write_text(wanted, encoding="utf-8")
            print(f"wrote {path}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
