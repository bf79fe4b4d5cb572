"""Reading a model's answer as JSON: bare, fenced in ```json, or the first {...} in the text.

Small models wrap JSON in prose or code fences; the parse is lenient so the format checks
(which are strict) can say precisely what was wrong.
"""

import json
import re
from typing import Any

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)
_decoder = json.JSONDecoder()


def parse_json_output(text: str) -> tuple[dict[str, Any] | None, str | None]:
    """(the object, None) or (None, why not)."""
    stripped = text.strip()
    if not stripped:
        return None, "empty output"
    candidates = [stripped, *(m.strip() for m in _FENCE.findall(stripped))]
    candidates += [stripped[i:] for i, ch in enumerate(stripped) if ch == "{"]
    for candidate in candidates:
        try:
            value, _ = _decoder.raw_decode(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value, None
    return None, "no JSON object found in the output"


def is_bare_json(text: str) -> bool:
    """True when the whole output is one JSON object and nothing else."""
    try:
        return isinstance(json.loads(text), dict)
    except json.JSONDecodeError:
        return False
