"""YAML loading that remembers where every value came from.

PyYAML's safe loader (never the full one), subclassed so mappings and lists
carry the line/column of each key and item. Validation walks a JSON path
through these to point at `file:line:col`. Duplicate keys are errors, not
silent overwrites.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, SequenceNode


@dataclass(frozen=True)
class Mark:
    line: int  # 1-based
    col: int  # 1-based

    @classmethod
    def of(cls, mark: yaml.Mark) -> Mark:
        return cls(mark.line + 1, mark.column + 1)


class PosDict(dict[str, Any]):
    """A mapping that knows where it, each key and each value start."""

    mark: Mark
    key_marks: dict[str, Mark]
    value_marks: dict[str, Mark]
    #: keys written twice: (key, where the second one is); validation reports them
    duplicates: list[tuple[str, Mark]]


class PosList(list[Any]):
    mark: Mark
    item_marks: list[Mark]


@dataclass
class YamlProblem:
    mark: Mark
    message: str
    fix: str | None = None
    path: tuple[str | int, ...] = ()
    code: str = "R001"


class PositionedLoader(yaml.SafeLoader):
    """SafeLoader that builds PosDict/PosList and records duplicate keys on them."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> PosDict:  # type: ignore[override]
        written = {id(key) for key, _ in node.value}  # before `<<:` merges are expanded
        self.flatten_mapping(node)
        result = PosDict()
        result.mark = Mark.of(node.start_mark)
        result.key_marks = {}
        result.value_marks = {}
        result.duplicates = []
        merged: set[str] = set()
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError as exc:
                raise ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    "found unhashable key",
                    key_node.start_mark,
                ) from exc
            key_text = key if isinstance(key, str) else str(key)
            explicit = id(key_node) in written
            if key_text in result and explicit and key_text not in merged:
                result.duplicates.append((key_text, Mark.of(key_node.start_mark)))
                continue
            # Otherwise the later entry wins, as in PyYAML: an explicit key overrides
            # one merged in with `<<:`, which is YAML's rule and not a mistake.
            if explicit:
                merged.discard(key_text)
            else:
                merged.add(key_text)
            result[key_text] = self.construct_object(value_node, deep=True)
            result.key_marks[key_text] = Mark.of(key_node.start_mark)
            result.value_marks[key_text] = Mark.of(value_node.start_mark)
        return result

    def construct_sequence(self, node: SequenceNode, deep: bool = False) -> PosList:  # type: ignore[override]
        result = PosList(self.construct_object(child, deep=True) for child in node.value)
        result.mark = Mark.of(node.start_mark)
        result.item_marks = [Mark.of(child.start_mark) for child in node.value]
        return result


def _construct_map(loader: PositionedLoader, node: Node) -> PosDict:
    assert isinstance(node, MappingNode)
    return loader.construct_mapping(node, deep=True)


def _construct_seq(loader: PositionedLoader, node: Node) -> PosList:
    assert isinstance(node, SequenceNode)
    return loader.construct_sequence(node, deep=True)


class ValueProblem(ConstructorError):
    """A scalar YAML reads as a value it cannot hold; carries its own fix."""

    def __init__(self, message: str, fix: str, node: Node) -> None:
        super().__init__(None, None, message, node.start_mark)
        self.fix = fix


def _construct_timestamp(loader: PositionedLoader, node: Node) -> Any:
    """A value shaped like a date that is not one (2020-13-45) is a positioned
    error, not a ValueError from deep inside PyYAML."""
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ValueProblem(
            f"{node.value!r} looks like a date but is not one ({exc})",
            _date_fix(str(node.value)),
            node,
        ) from exc


def _date_fix(value: str) -> str:
    """How to write this particular not-a-date: the real date nearest, or quotes."""
    quoted = f'or quote it to keep it as text: "{value}"'
    match = re.match(r"^(\d{4})-(\d{1,2})-(\d{1,2})", value)
    if match is None:
        return f"write a real date (YYYY-MM-DD), {quoted}"
    year, month, day = (int(part) for part in match.groups())
    if not 1 <= month <= 12:
        return f"months go from 01 to 12: write a real date, {quoted}"
    last = calendar.monthrange(year, month)[1]
    if not 1 <= day <= last:
        return f"the last day of {year}-{month:02d} is {year}-{month:02d}-{last:02d}; {quoted}"
    return f"write a real date (YYYY-MM-DD), {quoted}"


def _construct_int(loader: PositionedLoader, node: Node) -> Any:
    """An integer too long for Python to read (over 4,300 digits) is a positioned
    error, not a ValueError from deep inside PyYAML."""
    try:
        return yaml.SafeLoader.construct_yaml_int(loader, node)  # type: ignore[arg-type]
    except ValueError as exc:
        digits = sum(ch.isdigit() for ch in str(node.value))
        raise ValueProblem(
            f"this integer has {digits:,} digits, far more than any count or size "
            "(SQLite keeps integers up to 9223372036854775807)",
            "write a smaller number, or quote it to keep it as text",
            node,
        ) from exc


PositionedLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
PositionedLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)
PositionedLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)
PositionedLoader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


class _FastPositionedLoader(yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader):  # type: ignore[misc]
    """PositionedLoader on libyaml's parser: the same nodes, marks and
    constructors, parsed in C (most of validation's time was the pure-Python
    scanner). Any problem is reported by parsing again with PositionedLoader,
    so messages are the same whichever parser found it."""

    construct_mapping = PositionedLoader.construct_mapping
    construct_sequence = PositionedLoader.construct_sequence
    yaml_constructors: ClassVar[dict[Any, Any]] = dict(PositionedLoader.yaml_constructors)


class YamlSyntaxError(Exception):
    def __init__(self, problem: YamlProblem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def load_positioned(text: str) -> tuple[Any, list[YamlProblem]]:
    """Parse one YAML document; raise YamlSyntaxError with a position on bad YAML."""
    fast = _FastPositionedLoader(text)
    try:
        data = fast.get_single_data()
    except (yaml.YAMLError, RecursionError, ValueError):
        pass  # parsed again below, for the message and the position
    else:
        _refuse_alias_bombs(data)
        return data, list(_duplicates(data, (), set()))
    finally:
        fast.dispose()
    try:
        loader = PositionedLoader(text)
    except yaml.YAMLError as exc:  # the reader refuses control characters at once
        raise YamlSyntaxError(
            YamlProblem(
                Mark(1, 1),
                f"YAML error: {exc}",
                "remove the control character: a playbook is plain text (save it as UTF-8)",
            )
        ) from exc
    try:
        data = loader.get_single_data()
    except ValueProblem as exc:
        where = Mark.of(exc.problem_mark) if exc.problem_mark is not None else Mark(1, 1)
        raise YamlSyntaxError(
            YamlProblem(where, str(exc.problem), exc.fix, _path_at(text, where), "R003")
        ) from exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Mark.of(mark) if mark is not None else Mark(1, 1)
        message, fix, where = _explain_syntax(text, exc, where)
        raise YamlSyntaxError(YamlProblem(where, message, fix)) from exc
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(
            YamlProblem(
                Mark(1, 1),
                f"YAML error: {exc}",
                "keep the file to one YAML document of plain mappings, lists and scalars",
            )
        ) from exc
    except RecursionError as exc:
        raise YamlSyntaxError(
            YamlProblem(Mark(1, 1), "YAML nested too deeply", "flatten the document")
        ) from exc
    finally:
        loader.dispose()
    _refuse_alias_bombs(data)
    return data, list(_duplicates(data, (), set()))


_UNQUOTED_EXPRESSION = re.compile(r"(^|[:\-\[,]\s*)\{\{")


def _explain_syntax(text: str, exc: yaml.MarkedYAMLError, where: Mark) -> tuple[str, str, Mark]:
    """PyYAML's complaint in plain words, with the fix for the usual causes:
    an unquoted `{{`, a tab, a mis-indented line, an unclosed quote or bracket."""
    lines = text.splitlines()
    problem = str(exc.problem or "")
    context = str(exc.context or "")
    raw = " ".join(part for part in (context, problem) if part)
    source = lines[where.line - 1] if 0 < where.line <= len(lines) else ""
    start = exc.context_mark
    opened = f"line {start.line + 1}, column {start.column + 1}" if start else "above"
    if "'\\t'" in problem or "\t" in source[: max(where.col, 1)]:
        return (
            "YAML syntax error: a tab character; YAML indents with spaces only",
            f"use spaces, not tabs: replace the tab on line {where.line} with spaces",
            where,
        )
    expression_line = next(
        (
            (number, line)
            for number, line in _around(lines, where.line)
            if _UNQUOTED_EXPRESSION.search(line.split("#")[0])
        ),
        None,
    )
    if expression_line is not None or "unhashable key" in problem:
        number, line = expression_line or (where.line, source)
        key, _, value = line.strip().lstrip("- ").partition(":")
        example = f'{key.strip()}: "{value.strip()}"' if value.strip() else '"{{ name }}"'
        return (
            f"YAML syntax error: an unquoted {{{{ on line {number} "
            "(YAML reads `{` as the start of a mapping)",
            f"put a value that starts with {{{{ in quotes: {example}",
            Mark(number, line.find("{{") + 1) if "{{" in line else where,
        )
    if "end of stream" in problem and "quoted scalar" in context:
        return (
            f"YAML syntax error: the quote opened at {opened} is never closed",
            'close the quote (a value in double quotes ends at the next unescaped ")',
            Mark.of(start) if start else where,
        )
    if "flow sequence" in context or "flow mapping" in context:
        bracket = "]" if "sequence" in context else "}"
        return (
            f"YAML syntax error: the {'[' if bracket == ']' else '{'} opened at {opened} "
            f"is not closed where expected ({problem})",
            f"close it with {bracket}, and separate its items with ', '",
            where,
        )
    if "mapping values are not allowed" in problem or "expected <block end>" in problem:
        above = next(
            (line for _, line in reversed(list(_around(lines, where.line, after=0))[:-1])), ""
        )
        indent = len(above) - len(above.lstrip(" -")) if above.strip() else 0
        own = len(source) - len(source.lstrip(" "))
        key, _, value = source.strip().lstrip("- ").partition(": ")
        if ": " in value and own == indent and value.strip()[:1] not in ("{", "[", '"', "'"):
            return (
                f"YAML syntax error: line {where.line} holds ': ' inside its value",
                f'put the value in quotes: {key}: "{value.strip()}"',
                where,
            )
        if own == indent:
            return (
                f"YAML syntax error: {raw}",
                f"write `key: value` on line {where.line - 1} and {where.line} (a key needs "
                "': ' after it), and quote a value that itself holds ': '",
                where,
            )
        how = "more" if own > indent else "less"
        return (
            f"YAML syntax error: line {where.line} is indented {how} than the key above it "
            f"({own} spaces, not {indent})",
            f"indent line {where.line} like the key above it ({indent} spaces), or, for a "
            "value that holds ': ', put the value in quotes",
            Mark(where.line, own + 1),
        )
    for clue, fix in _OTHER_FIXES:
        if clue in raw:
            # a key without its colon: the scanner notices a line later
            at_key = Mark.of(start) if start is not None and "expected ':'" in clue else None
            return f"YAML syntax error: {raw}", fix, at_key or where
    return (
        f"YAML syntax error: {raw}",
        "check indentation (spaces only), quoting and that every ':' is followed by a space",
        where,
    )


_OTHER_FIXES = (
    ("single document", "keep one document per playbook: remove the second `---` and what follows"),
    ("undefined alias", "define the anchor (`&name`) before the alias (`*name`) that uses it"),
    ("could not find expected ':'", "write `key: value`, with a space after the colon"),
    ("for merging", "`<<:` merges a mapping: point it at an anchored mapping"),
)


def _around(lines: list[str], line: int, after: int = 1) -> Iterator[tuple[int, str]]:
    """The non-blank lines from a few before `line` to `after` after it, numbered."""
    for number in range(max(1, line - 3), min(len(lines), line + after) + 1):
        if lines[number - 1].strip():
            yield number, lines[number - 1]


def _path_at(text: str, where: Mark) -> tuple[str | int, ...]:
    """The JSON path of the node that starts at `where` (for a value PyYAML
    parses but cannot construct, like 2026-02-30): composing builds no values."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return ()
    found: tuple[str | int, ...] = ()

    def visit(node: Node, path: tuple[str | int, ...]) -> bool:
        nonlocal found
        if Mark.of(node.start_mark) == where and not isinstance(node, (MappingNode, SequenceNode)):
            found = path
            return True
        if isinstance(node, MappingNode):
            return any(visit(value, (*path, str(key.value))) for key, value in node.value)
        if isinstance(node, SequenceNode):
            return any(visit(item, (*path, index)) for index, item in enumerate(node.value))
        return False

    if root is not None:
        visit(root, ())
    return found


#: More values than any playbook holds; a document that expands beyond this
#: through aliases ("billion laughs") would make every later pass hang.
MAX_EXPANDED_VALUES = 1_000_000


def _refuse_alias_bombs(data: Any) -> None:
    if not isinstance(data, (dict, list)):
        return
    memo: dict[int, int] = {}
    total, worst = 0, None
    items: Iterable[tuple[Any, Any]] = data.items() if isinstance(data, dict) else enumerate(data)
    for key, value in items:
        size = _expanded_size(value, memo)
        total += size
        if worst is None or size > worst[1]:
            worst = (key, size)
    if total > MAX_EXPANDED_VALUES and worst is not None:
        key = worst[0]
        marks: dict[Any, Mark] = data.value_marks if isinstance(data, PosDict) else {}
        raise YamlSyntaxError(
            YamlProblem(
                marks.get(key, Mark(1, 1)),
                f"this value expands to {worst[1]:,} values through YAML aliases "
                f"(more than {MAX_EXPANDED_VALUES:,} in the document): an alias bomb?",
                "write the values out instead of nesting aliases",
                (key,),
                "R001",
            )
        )


def _expanded_size(node: Any, memo: dict[int, int]) -> int:
    """Values in `node` with every alias expanded, counting each shared node once
    per reference but computing it once (so a bomb costs its text size, not its
    expansion)."""
    if not isinstance(node, (dict, list)):
        return 1
    known = memo.get(id(node))
    if known is not None:
        return known
    children = node.values() if isinstance(node, dict) else node
    size = 1 + sum(_expanded_size(child, memo) for child in children)
    memo[id(node)] = size
    return size


def _duplicates(node: Any, path: tuple[str | int, ...], seen: set[int]) -> Iterator[YamlProblem]:
    """Duplicate keys, reported once per node even if aliases share it."""
    if isinstance(node, (PosDict, PosList)):
        if id(node) in seen:
            return
        seen.add(id(node))
    if isinstance(node, PosDict):
        for key, mark in node.duplicates:
            first = node.key_marks[key]
            yield YamlProblem(
                mark,
                f"duplicate key {key!r} (first defined at line {first.line})",
                "remove one of the two entries",
                (*path, key),
                "R002",
            )
        for key, value in node.items():
            yield from _duplicates(value, (*path, key), seen)
    elif isinstance(node, PosList):
        for index, value in enumerate(node):
            yield from _duplicates(value, (*path, index), seen)


def mark_for_path(root: Any, path: tuple[str | int, ...], *, key: bool = False) -> Mark:
    """The position of the value at `path`, or of its nearest existing parent.

    With key=True a mapping entry points at its key rather than its value
    (better for "unknown key" messages).
    """
    node = root
    best: Mark = getattr(root, "mark", Mark(1, 1))
    for index, part in enumerate(path):
        last = index == len(path) - 1
        if isinstance(node, PosDict) and isinstance(part, str) and part in node:
            best = node.key_marks[part] if (key and last) else node.value_marks[part]
            node = node[part]
        elif isinstance(node, PosList) and isinstance(part, int) and 0 <= part < len(node):
            best = node.item_marks[part]
            node = node[part]
        else:
            break
    return best


def plain(value: Any) -> Any:
    """The same data as built-in dicts and lists, without positions."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
