"""Objective scorers: small registered functions, candidate (+ suite) -> a value in [0, 1].

Adding a scorer is one function with the `@scorer` decorator; a suite lists the ones it wants
in suite.yaml (`scorers:`).
"""

import json
from collections.abc import Callable
from typing import NamedTuple

from jsonschema.validators import validator_for

from benchlib.errors import BenchlibError
from benchlib.parsing import is_bare_json
from benchlib.records import Candidate
from benchlib.suite import Suite

VERSION = "scoring-v1"


class ScoreValue(NamedTuple):
    value: float
    explanation: str


Scorer = Callable[[Candidate, Suite], ScoreValue]
REGISTRY: dict[str, Scorer] = {}


def scorer(name: str) -> Callable[[Scorer], Scorer]:
    def register(fn: Scorer) -> Scorer:
        REGISTRY[name] = fn
        return fn

    return register


@scorer("format_ok")
def format_ok(candidate: Candidate, suite: Suite) -> ScoreValue:
    """1 when the whole output is one JSON object that satisfies the suite's output schema."""
    if not is_bare_json(candidate.text):
        why = candidate.parse_error or "JSON found, but wrapped in other text"
        if candidate.finish_reason == "length":
            why += " (the output was cut at max_tokens)"
        return ScoreValue(0.0, f"not bare JSON: {why}")
    errors = sorted(
        validator_for(suite.output_schema)(suite.output_schema).iter_errors(
            json.loads(candidate.text)
        ),
        key=str,
    )
    if errors:
        return ScoreValue(0.0, f"schema: {errors[0].message}")
    return ScoreValue(1.0, "valid JSON matching the schema")


@scorer("overlong")
def overlong(candidate: Candidate, suite: Suite) -> ScoreValue:
    """1 when the policed text (the policy's field, or the whole output) exceeds max_words."""
    policy = suite.spec.policies
    if not policy.max_words:
        return ScoreValue(0.0, "no max_words policy")
    text = candidate.text
    if policy.text_field and candidate.parsed and policy.text_field in candidate.parsed:
        text = str(candidate.parsed[policy.text_field])
    words = len(text.split())
    return ScoreValue(float(words > policy.max_words), f"{words} words (max {policy.max_words})")


def check_scorers(suite: Suite) -> None:
    unknown = [name for name in suite.spec.scorers if name not in REGISTRY]
    if unknown:
        raise BenchlibError(
            f"{suite.path / 'suite.yaml'}: unknown scorer(s) {unknown}: "
            f"expected names from {sorted(REGISTRY)}"
        )
