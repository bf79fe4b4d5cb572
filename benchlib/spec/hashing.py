"""Content hashes: the identity of prompts, scenarios, rubrics and cells."""

import hashlib
import json
from collections.abc import Mapping
from typing import Any

# The key under which a scenario (a `scenarios:` entry, a `matrix:` item, a fixture) may carry
# its integrity hash, so a hand edit that was not meant is caught before a run uses it.
INTEGRITY_KEY = "sha256"


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def content_hash(value: Any) -> str:
    """sha256 of a string's bytes, or of any other value's canonical JSON; 16 hex chars suffice."""
    text = value if isinstance(value, str) else canonical_json(value)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def scenario_hash(entry: Mapping[str, Any]) -> str:
    """The integrity hash of a scenario: full sha256 of the canonical JSON of its content, i.e.
    the entry without `id` and `sha256` (renaming is not tampering; the hash cannot hash itself).
    Its first 16 characters are the scenario's identity hash, so a cell's `scenario_hash` and a
    file's `sha256:` can be matched by eye."""
    return hashlib.sha256(canonical_json(scenario_content(entry)).encode()).hexdigest()


def scenario_content(entry: Mapping[str, Any]) -> dict[str, Any]:
    """What a scenario entry says, without its name (`id`) and its own hash (`sha256`)."""
    return {key: value for key, value in entry.items() if key not in ("id", INTEGRITY_KEY)}
