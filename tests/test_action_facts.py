"""Action facts files: validation reads them instead of importing the actions' code.

Each shipped procedure names its actions by reference and ships
`<procedure>.actions.json`; the classes are imported only when a step is
planned or run, and checked against the file then.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from runner.contract import ActionInfo, Procedure, ProcedureAssets, ProcedureLoadError, Registry
from runner.procedures import SHIPPED, load_registry
from runner.procedures.archive_volume import PROCEDURE as ARCHIVE
from runner.procedures.facts import facts_text
from runner.procedures.facts import main as facts_main
from tests.helpers import PLAYBOOKS_DIR, ROOT, SCHEMAS_DIR, fix_line, process_env, run_process


def test_the_shipped_facts_files_are_current() -> None:
    """Fails after an action's summary, outputs, loss units or destructive flag
    change until `python -m runner.procedures.facts` is run."""
    assert facts_main(["--check"]) == 0


@pytest.mark.parametrize("module", SHIPPED)
def test_the_registry_reads_facts_that_equal_the_classes(module: str) -> None:
    import importlib

    procedure: Procedure = importlib.import_module(module).PROCEDURE
    assert isinstance(procedure.actions, str)  # by reference, so validate imports no code
    registry = Registry([procedure])
    classes = procedure.action_classes()
    assert list(registry.actions) == [action.name for action in classes]
    for action in classes:
        assert registry.info(action.name) == ActionInfo.of(action)
        assert registry.action(action.name) is action


def test_validating_shipped_playbooks_imports_no_action_code() -> None:
    """The whole point: `recover validate` of every shipped playbook loads no
    action module (nor their media, catalog and world modules), does not look
    for other packages' procedures (importlib.metadata), does not import numpy
    (only the keyed sort needs it) and, quiet or not, sets up no log (loguru)."""
    shipped = [str(p) for p in sorted(PLAYBOOKS_DIR.glob("*.yaml"))]
    script = textwrap.dedent(
        f"""
        import sys
        from runner.cli import main
        sys.argv = ["recover", "-q", "validate", *{shipped!r}]
        try:
            main()
        except SystemExit as exit:
            code = exit.code
        loaded = sorted(
            m for m in sys.modules
            if ".actions" in m or ".world" in m
            or m in ("importlib.metadata", "loguru", "numpy")
        )
        print("EXIT", code, "LOADED", ",".join(loaded))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=process_env(RECOVER_EXTRA_PROCEDURES=""),
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=60,
    )
    last = done.stdout.strip().splitlines()[-1]
    assert last == "EXIT 0 LOADED", done.stdout + done.stderr


def _copied_assets(tmp_path: Path) -> Path:
    """The shipped schema folder of actions, copied so a test may edit its facts."""
    folder = tmp_path / "schemas"
    shutil.copytree(SCHEMAS_DIR / "actions", folder)
    return folder


def test_stale_facts_are_refused_when_the_code_is_imported_and_the_fix_works(
    tmp_path: Path,
) -> None:
    folder = _copied_assets(tmp_path)
    facts = folder / "archive.actions.json"
    data = json.loads(facts.read_text())
    data["actions"][0]["summary"] = "an old summary"
    facts.write_text(json.dumps(data))
    procedure = Procedure(
        name="archive",
        title=ARCHIVE.title,
        actions=ARCHIVE.actions,
        assets=ProcedureAssets(schemas=folder),
    )
    registry = Registry([procedure])
    assert registry.info("archive.load").summary == "an old summary"  # what validate sees
    with pytest.raises(ProcedureLoadError, match="does not match its actions' code") as raised:
        registry.action("archive.load")
    assert "python -m runner.procedures.facts" in raised.value.fix
    facts.write_text(facts_text(procedure))  # what that command writes
    assert Registry([procedure]).action("archive.load").name == "archive.load"


def test_a_damaged_facts_file_is_a_load_error_with_the_fix(tmp_path: Path) -> None:
    folder = _copied_assets(tmp_path)
    (folder / "archive.actions.json").write_text('{"actions": [{"name": 1}]')
    procedure = Procedure(
        name="archive", title="t", actions=ARCHIVE.actions, assets=ProcedureAssets(schemas=folder)
    )
    with pytest.raises(ProcedureLoadError, match="cannot read its facts file") as raised:
        Registry([procedure])
    assert "python -m runner.procedures.facts" in raised.value.fix


def test_without_a_facts_file_the_classes_are_imported_at_once(tmp_path: Path) -> None:
    folder = _copied_assets(tmp_path)
    (folder / "archive.actions.json").unlink()
    procedure = Procedure(
        name="archive", title="t", actions=ARCHIVE.actions, assets=ProcedureAssets(schemas=folder)
    )
    registry = Registry([procedure])
    assert registry._classes.keys() == registry.actions.keys()


BROKEN = """
from pathlib import Path
from runner.contract import Procedure, ProcedureAssets

PROCEDURE = Procedure(
    name="broken",
    title="facts that validate, code that does not import",
    actions="no_such_module_anywhere:ACTIONS",
    assets=ProcedureAssets(schemas=Path(__file__).parent / "schemas"),
)
"""

BROKEN_PLAYBOOK = """\
version: 1
name: broken
site: {root: site}
steps:
  - id: one
    action: broken.touch
    args: {}
"""


def test_a_procedure_whose_code_fails_to_import_fails_at_plan_not_at_validate(
    tmp_path: Path,
) -> None:
    """Validation needs only the facts; planning needs the code, and a failure to
    import it is a clean error with a fix, not a traceback."""
    (tmp_path / "brokenproc.py").write_text(BROKEN)
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    (schemas / "broken.touch.schema.json").write_text('{"type": "object"}')
    info = ActionInfo("broken.touch", "touch nothing")
    (schemas / "broken.actions.json").write_text(json.dumps({"actions": [info.to_json()]}))
    (tmp_path / "site").mkdir()
    playbook = tmp_path / "broken.yaml"
    playbook.write_text(BROKEN_PLAYBOOK)
    env = process_env(PYTHONPATH=f"{ROOT}:{tmp_path}", RECOVER_EXTRA_PROCEDURES="brokenproc")
    validated = run_process("validate", playbook, env=env)
    assert validated.returncode == 0, validated.stderr
    planned = run_process("plan", playbook, env=env)
    assert planned.returncode == 1, planned.stdout + planned.stderr
    assert "cannot import its actions" in planned.stderr
    assert "no_such_module_anywhere" in planned.stderr
    assert fix_line(planned.stderr)
    assert "Traceback" not in planned.stderr and "internal error" not in planned.stderr


def test_load_registry_lists_every_shipped_action_from_facts() -> None:
    registry = load_registry({})
    assert len(registry.actions) == sum(
        len(json.loads((SCHEMAS_DIR / "actions" / f"{p.name}.actions.json").read_text())["actions"])
        for p in registry.procedures
    )
    assert not registry._classes  # nothing imported yet
