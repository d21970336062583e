"""The shipped files: the top-level schemas/, templates/ and playbooks/ folders.

Those folders are the source of truth; pyproject.toml maps them into this
package (`runner.assets.schemas`, `.templates`, `.playbooks`) so that a wheel
carries them as package data and an editable install finds them in the source
tree, both through importlib.resources.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable

from runner.contract import ProcedureAssets

# The functions are named *_folder: the subpackages runner.assets.schemas (etc.)
# become attributes of this module once imported, and would shadow them.


def schema_folder() -> Traversable:
    """schemas/: the playbook schema, the editor bundle, actions/."""
    return files("runner.assets.schemas")


def template_folder() -> Traversable:
    return files("runner.assets.templates")


def playbook_folder() -> Traversable:
    return files("runner.assets.playbooks")


def shipped_procedure_assets() -> ProcedureAssets:
    """Where the five shipped procedures keep their files."""
    return ProcedureAssets(schema_folder() / "actions", template_folder(), playbook_folder())
