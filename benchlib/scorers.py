"""Objective scorers (`scoring-v1`): what a machine can check on every output.

Each scorer is a factory registered with `@scorer`: the suite names it in suite.yaml, with
parameters (`- {name: reference_consistency, params: {...}}`), and the factory returns the
function that scores one output, a value in [0, 1] with a short explanation. Adding a scorer
is one function here.
"""

import difflib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from jsonschema.validators import validator_for

from benchlib.errors import BenchlibError
from benchlib.parsing import is_bare_json
from benchlib.records import Candidate
from benchlib.suite import Policies, Suite

VERSION = "scoring-v1"


class ScoreValue(NamedTuple):
    value: float
    explanation: str


@dataclass(frozen=True)
class ScoreInput:
    """One output and what it is judged against."""

    candidate: Candidate
    schema: dict[str, Any]
    policies: Policies
    scenario: dict[str, Any]
    siblings: list[Candidate]  # the cell's other attempts at the same step
    earlier: list[Candidate]  # the same attempt's earlier steps in the chain


ScoreFn = Callable[[ScoreInput], ScoreValue]
REGISTRY: dict[str, Callable[..., ScoreFn]] = {}


def scorer(name: str) -> Callable[[Callable[..., ScoreFn]], Callable[..., ScoreFn]]:
    def register(factory: Callable[..., ScoreFn]) -> Callable[..., ScoreFn]:
        REGISTRY[name] = factory
        return factory

    return register


def _fraction(passed: list[str], failed: list[str], nothing: str) -> ScoreValue:
    total = len(passed) + len(failed)
    if not total:
        return ScoreValue(1.0, nothing)
    why = f"failed: {'; '.join(failed)}" if failed else f"all {total} checks pass"
    return ScoreValue(len(passed) / total, why)


def _schema_errors(schema: dict[str, Any], value: Any) -> list[str]:
    errors = validator_for(schema)(schema).iter_errors(value)
    return sorted(f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors)


def _norm(value: Any) -> str:
    return " ".join(str(value).lower().split())


@scorer("schema_validity")
def schema_validity() -> ScoreFn:
    """The output parses (leniently) and conforms to its step's schema."""

    def score(item: ScoreInput) -> ScoreValue:
        if item.candidate.parsed is None:
            return ScoreValue(0.0, f"no JSON: {item.candidate.parse_error}")
        errors = _schema_errors(item.schema, item.candidate.parsed)
        if not errors:
            return ScoreValue(1.0, "valid")
        more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
        return ScoreValue(0.0, "schema: " + "; ".join(errors[:3]) + more)

    return score


@scorer("format_ok")
def format_ok() -> ScoreFn:
    """Stricter than schema_validity: the whole output is the JSON object, nothing around it."""
    valid = schema_validity()

    def score(item: ScoreInput) -> ScoreValue:
        if not is_bare_json(item.candidate.text):
            why = item.candidate.parse_error or "JSON found, but wrapped in other text"
            if item.candidate.finish_reason == "length":
                why += " (the output was cut at max_tokens)"
            return ScoreValue(0.0, f"not bare JSON: {why}")
        return valid(item)

    return score


@scorer("completeness")
def completeness(fields: list[str] | None = None) -> ScoreFn:
    """Share of required fields (the schema's `required`, or `fields`) present and non-empty."""

    def score(item: ScoreInput) -> ScoreValue:
        required = fields if fields is not None else item.schema.get("required", [])
        parsed = item.candidate.parsed or {}
        filled = [f for f in required if parsed.get(f) not in (None, "", [], {})]
        missing = [f"{f} missing or empty" for f in required if f not in filled]
        return _fraction(filled, missing, "no required fields")

    return score


def _policed_text(item: ScoreInput) -> str:
    field = item.policies.text_field
    parsed = item.candidate.parsed
    if field and parsed and field in parsed:
        return str(parsed[field])
    return item.candidate.text


@scorer("overlong")
def overlong() -> ScoreFn:
    """1 (a flag, not a grade) when the policed text has more words than max_words."""

    def score(item: ScoreInput) -> ScoreValue:
        limit = item.policies.max_words
        if not limit:
            return ScoreValue(0.0, "no max_words policy")
        words = len(_policed_text(item).split())
        return ScoreValue(float(words > limit), f"{words} words (max {limit})")

    return score


@scorer("policy_compliance")
def policy_compliance() -> ScoreFn:
    """Share of the suite's policies that hold: length, forbidden phrases, allowed tools."""

    def score(item: ScoreInput) -> ScoreValue:
        policies, passed, failed = item.policies, [], []
        if policies.max_words:
            words = len(_policed_text(item).split())
            (passed if words <= policies.max_words else failed).append(
                f"{words} words (max {policies.max_words})"
            )
        text = _norm(item.candidate.text)
        for phrase in policies.forbidden_phrases:
            (failed if _norm(phrase) in text else passed).append(f"forbidden {phrase!r}")
        calls = (item.candidate.parsed or {}).get("tool_calls")
        if policies.allowed_tools and isinstance(calls, list):
            for call in calls:
                name = call.get("name") if isinstance(call, dict) else None
                args = set((call.get("arguments") or {}) if isinstance(call, dict) else {})
                allowed = policies.allowed_tools.get(name)
                if allowed is None:
                    failed.append(f"tool {name!r} is not allowed")
                elif extra := sorted(args - set(allowed)):
                    failed.append(f"tool {name!r} got arguments {extra} it does not allow")
                else:
                    passed.append(f"tool {name!r}")
        return _fraction(passed, failed, "no policies apply")

    return score


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def _numbers(value: Any) -> set[float]:
    text = json.dumps(value) if not isinstance(value, str) else value
    return {float(n) for n in _NUMBER.findall(text.replace(",", ""))}


@scorer("reference_consistency")
def reference_consistency(
    equals: dict[str, str] | None = None,
    chain_fields: list[str] | None = None,
    figures_field: str = "",
    figures_from: list[str] | None = None,
) -> ScoreFn:
    """Values that must agree do.

    equals: output field -> scenario variable it must name (the ticker, the persona).
    chain_fields: fields a later step must keep as the earlier steps gave them.
    figures_field / figures_from: every number quoted in that output field must come from
    those scenario variables (no invented figures).
    """
    equals, chain_fields, figures_from = equals or {}, chain_fields or [], figures_from or []

    def score(item: ScoreInput) -> ScoreValue:
        parsed = item.candidate.parsed or {}
        declared = set(item.schema.get("properties", {}))
        passed: list[str] = []
        failed: list[str] = []
        for field, variable in equals.items():
            if field in declared:
                reference = _norm(item.scenario.get(variable, ""))
                ok = bool(reference) and reference in _norm(parsed.get(field, ""))
                (passed if ok else failed).append(f"{field} names {variable} {reference!r}")
        for field in chain_fields:
            if field not in declared:
                continue
            for earlier in item.earlier:
                before = (earlier.parsed or {}).get(field)
                if before is not None:
                    ok = _norm(parsed.get(field, "")) == _norm(before)
                    (passed if ok else failed).append(f"{field} kept from step {earlier.step!r}")
        if figures_field and figures_field in declared:
            allowed = set().union(*(_numbers(item.scenario.get(v, "")) for v in figures_from))
            for figure in sorted(_numbers(parsed.get(figures_field, []))):
                ok = any(abs(figure - a) <= 1e-6 * max(1.0, abs(a)) for a in allowed)
                (passed if ok else failed).append(f"figure {figure:g} from the scenario")
        return _fraction(passed, failed, "nothing to check")

    return score


@scorer("stability")
def stability() -> ScoreFn:
    """Agreement with the cell's other attempts at the same settings: mean normalised
    similarity (the value) and exact-match rate (in the explanation)."""

    def score(item: ScoreInput) -> ScoreValue:
        others = item.siblings
        if not others:
            return ScoreValue(1.0, "single attempt")
        text = item.candidate.text
        exact = sum(o.output_hash == item.candidate.output_hash for o in others) / len(others)
        similarity = sum(difflib.SequenceMatcher(None, text, o.text).ratio() for o in others) / len(
            others
        )
        return ScoreValue(
            similarity, f"exact match with {exact:.0%} of {len(others)} other attempt(s)"
        )

    return score


def build_scorers(suite: Suite) -> dict[str, ScoreFn]:
    """The suite's scorers, ready to run; a clear error for an unknown one or bad parameters."""
    where = suite.path / "suite.yaml"
    unknown = [spec.name for spec in suite.spec.scorers if spec.name not in REGISTRY]
    if unknown:
        raise BenchlibError(
            f"{where}: unknown scorer(s) {unknown}: expected names from {sorted(REGISTRY)}"
        )
    scorers = {}
    for spec in suite.spec.scorers:
        try:
            scorers[spec.name] = REGISTRY[spec.name](**spec.params)
        except TypeError as exc:
            raise BenchlibError(
                f"{where}: scorer {spec.name!r}: bad params {spec.params}: {exc}"
            ) from None
    automatic = [flag.name for flag in suite.rubric.flags if flag.automatic]
    missing = [name for name in automatic if name not in scorers]
    if missing:
        raise BenchlibError(
            f"{suite.path / suite.spec.rubric}: automatic flag(s) {missing} need a scorer of "
            f"that name in {where} (scorers: {sorted(scorers)})"
        )
    return scorers
