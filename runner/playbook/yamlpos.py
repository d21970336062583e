"""YAML loading that remembers where every value came from.

PyYAML's safe loader (never the full one), subclassed so mappings and lists
carry the line/column of each key and item. Validation walks a JSON path
through these to point at `file:line:col`. Duplicate keys are errors, not
silent overwrites.
"""

from __future__ import annotations

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
            "write a real date (YYYY-MM-DD), or quote it to keep it as text",
            node,
        ) from exc


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
        raise YamlSyntaxError(YamlProblem(Mark(1, 1), f"YAML error: {exc}")) from exc
    try:
        data = loader.get_single_data()
    except ValueProblem as exc:
        where = Mark.of(exc.problem_mark) if exc.problem_mark is not None else Mark(1, 1)
        raise YamlSyntaxError(YamlProblem(where, str(exc.problem), exc.fix)) from exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Mark.of(mark) if mark is not None else Mark(1, 1)
        message = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        raise YamlSyntaxError(
            YamlProblem(
                where,
                f"YAML syntax error: {message}",
                "check indentation, quoting and that every ':' is followed by a space",
            )
        ) from exc
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(YamlProblem(Mark(1, 1), f"YAML error: {exc}")) from exc
    except RecursionError as exc:
        raise YamlSyntaxError(
            YamlProblem(Mark(1, 1), "YAML nested too deeply", "flatten the document")
        ) from exc
    finally:
        loader.dispose()
    _refuse_alias_bombs(data)
    return data, list(_duplicates(data, (), set()))


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
