"""YAML files read with the line of every key and item, so an error can point at it.

People hand-edit config and suite files; "rubric.yaml:41: criteria.1.levels: ..." is found in
seconds, a bare field path in a 200-line file is not.

Every YAML file benchlib reads comes through `read_yaml`, so the rules for a file that is not a
sensible document live here once: only regular files of bounded size are read (files.read_text,
which judge files share), an empty
document is an error (not silently the defaults), a key given twice is an error naming both
lines, and aliases may not expand a document beyond a bounded number of nodes.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from benchlib import files
from benchlib.errors import BenchlibError

Loc = Sequence[str | int]
NULL = "tag:yaml.org,2002:null"
MAX_NODES = 100_000  # after alias expansion: a "billion laughs" document is refused


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


def _index_lines(
    path: Path, node: yaml.Node, loc: tuple[str, ...], lines: dict[tuple[str, ...], int]
) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[tuple[str, str], int] = {}
        for key_node, value_node in node.value:
            key = (*loc, str(key_node.value))
            line = key_node.start_mark.line + 1
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                name = (key_node.tag, key_node.value)
                if name in seen:
                    raise BenchlibError(
                        f"{path}:{line}: {'.'.join(key)}: duplicate key (first given at line "
                        f"{seen[name]}): expected each key once"
                    )
                seen[name] = line
            lines.setdefault(key, line)
            _index_lines(path, value_node, key, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            key = (*loc, str(index))
            lines[key] = item.start_mark.line + 1
            _index_lines(path, item, key, lines)


def _check_size(path: Path, root: yaml.Node) -> None:
    """Count the nodes the document has once its aliases are expanded, without expanding
    them (each shared node is counted once and its size reused)."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        known = sizes.get(id(node))
        if known == -1:
            raise BenchlibError(
                f"{path}:{node.start_mark.line + 1}: an alias refers to a node that contains "
                "it (a recursive document): expected plain data"
            )
        if known is not None:
            return known
        sizes[id(node)] = -1
        total = 1
        if isinstance(node, yaml.MappingNode):
            total += sum(size(key) + size(value) for key, value in node.value)
        elif isinstance(node, yaml.SequenceNode):
            total += sum(size(item) for item in node.value)
        if total > MAX_NODES:
            raise BenchlibError(
                f"{path}:{node.start_mark.line + 1}: the document expands (through its aliases) "
                f"to more than {MAX_NODES:,} values: expected at most that"
            )
        sizes[id(node)] = total
        return total

    size(root)


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
    """Parse `path`; a missing, special, empty or oversized file, a syntax error, a duplicate
    key or an alias bomb is a BenchlibError with the file (and line)."""
    text = files.read_text(path, what)
    loader = yaml.SafeLoader(text)  # one parse gives both the nodes (lines) and the data
    try:
        node = loader.get_single_node()
        if node is None or node.tag == NULL:  # `---`, `~` or `null` alone: empty too
            raise BenchlibError(f"{path}: the {what} is empty: expected a YAML document")
        _check_size(path, node)
        lines: dict[tuple[str, ...], int] = {(): node.start_mark.line + 1}
        _index_lines(path, node, (), lines)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        raise BenchlibError(f"{path}{_syntax_error(exc)}") from None
    except yaml.YAMLError as exc:
        raise BenchlibError(f"{path}: not valid YAML: {exc}") from None
    except RecursionError:
        raise BenchlibError(f"{path}: nested too deeply: expected plain data") from None
    finally:
        loader.dispose()
    return YamlDoc(path=path, text=text, data=data, node=node, lines=lines)
