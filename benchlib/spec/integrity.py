"""Integrity hashes in scenario files: a `sha256:` on a scenario (or a matrix item) must match
its content (benchlib.spec.hashing.scenario_hash), so an edit nobody meant to make — a stray
keystroke in a fact sheet, a merge that kept the wrong side — stops the run instead of silently
changing what is measured. `benchlib suite hash SUITE --write` records deliberate edits.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from benchlib.errors import BenchlibError
from benchlib.spec.hashing import INTEGRITY_KEY, scenario_hash
from benchlib.spec.yamldoc import YamlDoc

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class HashedEntry:
    """A mapping in a scenarios file that can carry a hash: a scenario or a matrix item."""

    loc: Loc
    id: str
    declared: Any
    actual: str

    @property
    def label(self) -> str:
        if self.loc[0] == "matrix":
            return f"matrix {self.loc[1]} item {self.id!r}"
        return f"scenario {self.id!r}"

    @property
    def status(self) -> str:
        if self.declared is None:
            return "no hash"
        return "ok" if str(self.declared).strip().lower() == self.actual else "MISMATCH"


def hashed_entries(doc: YamlDoc) -> list[HashedEntry]:
    data = doc.data if isinstance(doc.data, dict) else {}
    found: list[tuple[Loc, Any]] = []
    if isinstance(data.get("matrix"), dict):
        for axis, items in data["matrix"].items():
            if isinstance(items, list):
                found += [(("matrix", axis, i), item) for i, item in enumerate(items)]
    elif isinstance(data.get("scenarios"), list):
        found = [(("scenarios", i), entry) for i, entry in enumerate(data["scenarios"])]
    return [
        HashedEntry(loc, str(entry["id"]), entry.get(INTEGRITY_KEY), scenario_hash(entry))
        for loc, entry in found
        if isinstance(entry, dict) and "id" in entry
    ]


def check_integrity(doc: YamlDoc, suite_folder: Path) -> None:
    """Every declared hash matches, or one error listing each mismatch (file, line, id, both
    hashes) and how to accept a deliberate edit."""
    problems = [
        f"{doc.where([*entry.loc, INTEGRITY_KEY])}: {entry.label}: sha256 does not match its "
        f"content: expected {entry.declared} (written in the file), actual {entry.actual}"
        for entry in hashed_entries(doc)
        if entry.status == "MISMATCH"
    ]
    if problems:
        hint = f"if the edit was deliberate, record it: benchlib suite hash {suite_folder} --write"
        raise BenchlibError("\n".join([*problems, hint]))


def _node_at(node: yaml.Node, loc: Loc) -> yaml.Node:
    for part in loc:
        if isinstance(node, yaml.SequenceNode):
            node = node.value[int(part)]
        else:
            node = next(v for k, v in node.value if k.value == str(part))
    return node


def filled_text(doc: YamlDoc) -> str:
    """The file's text with every hashable entry's `sha256:` set to its actual hash. Edits the
    text in place (after the `id:`, in the entry's own style) so comments and layout survive."""
    edits: list[tuple[int, int, str]] = []
    for entry in hashed_entries(doc):
        if entry.status == "ok":
            continue
        mapping = _node_at(doc.node, entry.loc)
        pairs = {key.value: (key, value) for key, value in mapping.value}
        if INTEGRITY_KEY in pairs:
            value = pairs[INTEGRITY_KEY][1]
            edits.append((value.start_mark.index, value.end_mark.index, entry.actual))
            continue
        id_key, id_value = pairs["id"]
        if mapping.flow_style:
            insert = f", {INTEGRITY_KEY}: {entry.actual}"
        else:
            insert = f"\n{' ' * id_key.start_mark.column}{INTEGRITY_KEY}: {entry.actual}"
        edits.append((id_value.end_mark.index, id_value.end_mark.index, insert))
    text = doc.text
    for start, end, replacement in sorted(edits, reverse=True):
        text = text[:start] + replacement + text[end:]
    return text
