"""recover: a declarative recovery runner for catalogs and emulated media."""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"

#: The project tree holding schemas/, templates/ and playbooks/ (the package is
#: installed editable, so these ship beside it rather than inside it).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
SCHEMAS_DIR = PROJECT_ROOT / "schemas"
TEMPLATES_DIR = PROJECT_ROOT / "templates"
PLAYBOOKS_DIR = PROJECT_ROOT / "playbooks"
