"""YAML files read with the line of every key and item, so an error can point at it.

People hand-edit config and suite files; "rubric.yaml:41: criteria.1.levels: ..." is found in
seconds, a bare field path in a 200-line file is not.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from benchlib.errors import BenchlibError

Loc = Sequence[str | int]


@dataclass(frozen=True)
class YamlDoc:
    path: Path
    text: str
    data: Any
    node: yaml.Node | None
    lines: dict[tuple[str, ...], int] = field(default_factory=dict)

    def line(self, loc: Loc) -> int | None:
        """The line of `loc`, else of its nearest enclosing key (a missing field: its parent)."""
        parts = tuple(str(part) for part in loc)
        while parts and parts not in self.lines:
            parts = parts[:-1]
        return self.lines.get(parts)

    def where(self, loc: Loc = ()) -> str:
        """`path:line` of `loc` (just `path` when the file is empty)."""
        line = self.line(loc)
        return f"{self.path}:{line}" if line else str(self.path)

    def node_at(self, loc: Loc) -> yaml.Node | None:
        """The node of the value at `loc` (its style and marks: where a block of text starts)."""
        node = self.node
        for part in loc:
            if isinstance(node, yaml.MappingNode):
                node = next((v for k, v in node.value if str(k.value) == str(part)), None)
            elif isinstance(node, yaml.SequenceNode) and str(part).isdigit():
                index = int(part)
                node = node.value[index] if index < len(node.value) else None
            else:
                return None
        return node


def _index_lines(node: yaml.Node, loc: tuple[str, ...], lines: dict[tuple[str, ...], int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = (*loc, str(key_node.value))
            lines.setdefault(key, key_node.start_mark.line + 1)
            _index_lines(value_node, key, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            key = (*loc, str(index))
            lines[key] = item.start_mark.line + 1
            _index_lines(item, key, lines)


def _syntax_error(exc: yaml.MarkedYAMLError) -> str:
    """`:line: not valid YAML: problem at column C (while parsing X that starts at line L)`."""
    mark, context = exc.problem_mark, exc.context_mark
    line = f":{mark.line + 1}" if mark else ""
    column = f" at column {mark.column + 1}" if mark else ""
    started = ""
    if exc.context:
        at = f" that starts at line {context.line + 1}" if context else ""
        started = f" ({exc.context}{at})"
    return f"{line}: not valid YAML: {exc.problem}{column}{started}"


def read_yaml(path: Path, what: str = "file") -> YamlDoc:
    """Parse `path`; a missing file or a syntax error is a BenchlibError with the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BenchlibError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise BenchlibError(f"{path}: expected a {what}, found a folder") from None
    except UnicodeDecodeError as exc:
        raise BenchlibError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    loader = yaml.SafeLoader(text)  # one parse gives both the nodes (lines) and the data
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        raise BenchlibError(f"{path}{_syntax_error(exc)}") from None
    except yaml.YAMLError as exc:
        raise BenchlibError(f"{path}: not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    lines: dict[tuple[str, ...], int] = {}
    if node is not None:
        lines[()] = node.start_mark.line + 1
        _index_lines(node, (), lines)
    return YamlDoc(path=path, text=text, data=data, node=node, lines=lines)
