"""A procedure whose one action has no argument schema: it must not load.

Loaded through RECOVER_EXTRA_PROCEDURES=tests.schemaless_procedure (a schema
folder that lacks the action's file) or tests.schemaless_procedure:NO_FOLDER
(no schema folder at all) by tests/test_packaging.py.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from runner.contract import Action, Procedure, ProcedureAssets, StepContext


class Touch(Action):
    name = "bare.touch"
    summary = "an action that forgot its schema"

    def run(self, ctx: StepContext) -> None:
        ctx.note("touched")


PROCEDURE = Procedure(
    name="bare",
    title="An action without an argument schema",
    actions=(Touch,),
    assets=ProcedureAssets(schemas=Path(__file__).parent / "example_procedure"),
)

NO_FOLDER = replace(PROCEDURE, assets=ProcedureAssets())
