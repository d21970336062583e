"""The shipped files: the top-level schemas/, templates/ and playbooks/ folders.

Those folders are the source of truth; pyproject.toml maps them into this
package (`runner.assets.schemas`, `.templates`, `.playbooks`) so that a wheel
carries them as package data and an editable install finds them in the source
tree, both through importlib.resources.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from runner.contract import ProcedureAssets

# The functions are named *_folder: the subpackages runner.assets.schemas (etc.)
# become attributes of this module once imported, and would shadow them.

#: the source checkout's root, when runner is imported from one
_CHECKOUT = Path(__file__).resolve().parent.parent.parent


def _folder(name: str) -> Traversable:
    """runner.assets.<name>; or, when runner is imported straight from a source
    checkout that is not installed editable (`python -m runner` or pytest run
    in the project directory, with a wheel or nothing installed), where the
    mapping does not exist, the checkout's own top-level folder."""
    try:
        return files(f"runner.assets.{name}")
    except ModuleNotFoundError:
        if (_CHECKOUT / name / "__init__.py").is_file():
            return _CHECKOUT / name
        raise


def schema_folder() -> Traversable:
    """schemas/: the playbook schema, the editor bundle, actions/."""
    return _folder("schemas")


def template_folder() -> Traversable:
    return _folder("templates")


def playbook_folder() -> Traversable:
    return _folder("playbooks")


def shipped_procedure_assets() -> ProcedureAssets:
    """Where the five shipped procedures keep their files."""
    return ProcedureAssets(schema_folder() / "actions", template_folder(), playbook_folder())
