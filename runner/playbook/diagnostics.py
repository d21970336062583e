"""A problem found in a playbook, at FILE:LINE:COL with its JSON path and a fix.

Every diagnostic carries a stable rule (`R101 unknown-key`) so CI and editors
can filter or document them, and a severity: errors make a playbook invalid;
warnings flag a valid but risky one (`recover validate --strict` fails on them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Rule:
    code: str
    name: str
    severity: Severity
    summary: str


_RULES = (
    Rule("R001", "yaml-syntax", "error", "the file is not valid YAML"),
    Rule("R002", "duplicate-key", "error", "a key written twice in one mapping"),
    Rule("R003", "yaml-value", "error", "a scalar YAML cannot read (a date that is not one)"),
    Rule("R004", "not-a-playbook", "error", "the file cannot be read or is not a mapping"),
    Rule("R101", "unknown-key", "error", "a key the schema does not allow here"),
    Rule("R102", "missing-key", "error", "a required key is missing"),
    Rule("R103", "wrong-type", "error", "a value of the wrong type"),
    Rule("R104", "bad-value", "error", "a value outside what the schema allows"),
    Rule("R105", "no-form-matches", "error", "a value that fits none of the forms allowed"),
    Rule("R106", "site-path", "error", "a path that leaves the site"),
    Rule("R107", "bad-name", "error", "a name the schema does not allow"),
    Rule("R108", "integer-too-large", "error", "an integer SQLite cannot store"),
    Rule("R201", "unknown-action", "error", "a step's action is not registered"),
    Rule("R202", "duplicate-step-id", "error", "two steps with the same id"),
    Rule("R203", "param-default", "error", "a param's default does not fit its type"),
    Rule("R204", "reserved-name", "error", "a param named like a reserved variable"),
    Rule("R205", "undeclared-param", "error", "an expression uses a param not declared"),
    Rule("R206", "bad-expression", "error", "an expression that does not parse"),
    Rule("R207", "expression-fails", "error", "an expression that fails with the defaults"),
    Rule("R208", "step-reference", "error", "`steps.X` names no earlier step"),
    Rule("R209", "unknown-output", "error", "`steps.X.outputs.Y` names no output of X"),
    Rule("R210", "type-mismatch", "error", "an output's type does not fit the argument"),
    Rule("R211", "loss-unit", "error", "an allow_loss unit no action counts loss in"),
    Rule("R212", "procedure-rule", "error", "a procedure's own cross-step rule"),
    Rule("R213", "plain-when", "error", "`when:` is plain text, so always true"),
    Rule("W301", "no-loss-budget", "warning", "a step can lose data and allow_loss allows none"),
    Rule("W302", "param-undocumented", "warning", "a param without a description"),
    Rule("W303", "when-always-true", "warning", "a `when:` that is always true"),
    Rule("W304", "unused-loss-budget", "warning", "an allow_loss unit no step here can lose"),
)
RULES: dict[str, Rule] = {rule.code: rule for rule in _RULES}


@dataclass(frozen=True)
class Diagnostic:
    file: str
    line: int
    col: int
    message: str
    path: tuple[str | int, ...] = ()
    fix: str | None = None
    code: str = ""
    #: the source line with a caret under the column (YAML syntax errors)
    frame: str = ""

    @property
    def rule(self) -> Rule | None:
        return RULES.get(self.code)

    @property
    def severity(self) -> Severity:
        rule = self.rule
        return rule.severity if rule else "error"

    @property
    def json_path(self) -> str:
        out = "$"
        for part in self.path:
            out += f"[{part}]" if isinstance(part, int) else f".{part}"
        return out

    def render(self) -> str:
        rule = self.rule
        tag = f"{rule.severity} {rule.code} {rule.name}: " if rule else ""
        text = f"{self.file}:{self.line}:{self.col}: {tag}{self.message} [{self.json_path}]"
        if self.frame:
            text += "\n" + self.frame
        return text + (f"\n  fix: {self.fix}" if self.fix else "")

    def as_dict(self) -> dict[str, Any]:
        rule = self.rule
        return {
            "file": self.file,
            "line": self.line,
            "col": self.col,
            "severity": self.severity,
            "rule": rule.code if rule else None,
            "rule_name": rule.name if rule else None,
            "message": self.message,
            "path": self.json_path,
            "fix": self.fix,
        }


def code_frame(text: str, line: int, col: int) -> str:
    """The source line and a caret under the column, as compilers show them."""
    lines = text.splitlines()
    if not 1 <= line <= len(lines):
        return ""
    source = lines[line - 1].replace("\t", "→")
    gutter = f"  {line} | "
    return f"{gutter}{source}\n{' ' * (len(gutter) + max(col - 1, 0))}^"


SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def to_sarif(diagnostics: list[Diagnostic], version: str, root: Path) -> dict[str, Any]:
    """A SARIF 2.1.0 log that GitHub code scanning accepts: every rule once in
    the driver, each result with its rule, level, message and a region; file
    locations relative to `root` (the repository checkout) where they can be."""
    used = sorted({d.code for d in diagnostics if d.code in RULES})
    index = {code: n for n, code in enumerate(used)}
    rules = [
        {
            "id": code,
            "name": RULES[code].name,
            "shortDescription": {"text": RULES[code].summary},
            "defaultConfiguration": {"level": RULES[code].severity},
        }
        for code in used
    ]
    results = []
    for d in diagnostics:
        result: dict[str, Any] = {
            "ruleId": d.code or "R000",
            "level": d.severity,
            "message": {"text": d.message + (f". Fix: {d.fix}" if d.fix else "")},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": _uri(d.file, root)},
                        "region": {"startLine": d.line, "startColumn": d.col},
                    },
                    "logicalLocations": [{"fullyQualifiedName": d.json_path, "kind": "member"}],
                }
            ],
        }
        if d.code in index:
            result["ruleIndex"] = index[d.code]
        results.append(result)
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "recover",
                        "version": version,
                        "rules": rules,
                    }
                },
                "results": results,
            }
        ],
    }


def _uri(file: str, root: Path) -> str:
    path = Path(file)
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_uri()


def github_annotation(d: Diagnostic) -> str:
    """A GitHub Actions workflow command: the problem shows on the file's line."""
    rule = d.rule
    title = f"{rule.code} {rule.name}" if rule else "recover validate"
    text = d.message + f" [{d.json_path}]" + (f"\nfix: {d.fix}" if d.fix else "")
    props = ",".join(
        f"{key}={_escape_property(str(value))}"
        for key, value in (("file", d.file), ("line", d.line), ("col", d.col), ("title", title))
    )
    return f"::{d.severity} {props}::{_escape_data(text)}"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")
