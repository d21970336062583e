"""Regenerate the action reference at the end of each docs/<procedure>.md from
the actions' schemas and declarations: `python docs/make_action_docs.py`.

tests/test_docs.py fails when a page and the schemas drift apart.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runner.contract import Registry  # noqa: E402
from runner.playbook.actions_doc import procedure_section, with_section  # noqa: E402
from runner.procedures import load_registry  # noqa: E402


def pages(registry: Registry) -> dict[Path, str]:
    """docs/<procedure package>.md -> its text with the generated block current."""
    out = {}
    for procedure in registry.procedures:
        package = procedure.action_classes()[0].__module__.split(".")[2]
        page = ROOT / "docs" / f"{package}.md"
        text = page.read_text(encoding="utf-8")
        out[page] = with_section(text, procedure_section(registry, procedure.name))
    return out


def main() -> None:
    for page, text in pages(load_registry({})).items():
        page.write_text(text, encoding="utf-8")
        print(f"wrote {page.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
