"""Objective scorers (`scoring-v1`): what a machine can check on every output.

Each scorer is a factory registered with `@scorer`: the suite names it in suite.yaml, with
parameters (`- {name: reference_consistency, params: {...}}`), and the factory returns the
function that scores one output, a value in [0, 1] with a short explanation. Adding a scorer
is one function here. A failed check's explanation shows the value that failed it.

The registration says which parameters name output fields and which name scenario variables,
so that a suite naming one that does not exist is refused when it loads, at its line.
"""

import difflib
import inspect
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from jsonschema.validators import validator_for
from pydantic import TypeAdapter, ValidationError

from benchlib.errors import BenchlibError, describe_errors, did_you_mean, shown
from benchlib.evaluation.parsing import is_bare_json
from benchlib.spec.suite import Policy, Suite, output_fields, suite_doc
from benchlib.spec.yamldoc import YamlDoc
from benchlib.store.records import Candidate

VERSION = "scoring-v1"
SHOWN = 60  # characters of an offending value an explanation quotes


class ScoreValue(NamedTuple):
    value: float
    explanation: str


@dataclass(frozen=True)
class ScoreInput:
    """One output and what it is judged against."""

    candidate: Candidate
    schema: dict[str, Any]
    policies: list[Policy]  # those that apply to this step (Suite.policies_for)
    scenario: dict[str, Any]
    siblings: list[Candidate]  # the cell's other attempts at the same step
    earlier: list[Candidate]  # the same attempt's earlier steps in the chain


ScoreFn = Callable[[ScoreInput], ScoreValue]


@dataclass(frozen=True)
class Registered:
    """A scorer factory, and which of its parameters name output fields (a mapping's keys, a
    list's items, a string) and scenario variables (a mapping's values, a list's items, a
    string)."""

    factory: Callable[..., ScoreFn]
    fields: tuple[str, ...] = ()
    variables: tuple[str, ...] = ()

    def __call__(self, **params: Any) -> ScoreFn:
        return self.factory(**params)


REGISTRY: dict[str, Registered] = {}


def scorer(
    name: str, fields: Sequence[str] = (), variables: Sequence[str] = ()
) -> Callable[[Callable[..., ScoreFn]], Callable[..., ScoreFn]]:
    def register(factory: Callable[..., ScoreFn]) -> Callable[..., ScoreFn]:
        REGISTRY[name] = Registered(factory, tuple(fields), tuple(variables))
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
    return sorted(
        f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {_cut(e.message)}" for e in errors
    )


def _cut(text: str, limit: int = 2 * SHOWN) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _norm(value: Any) -> str:
    """Text for substring tests: case-folded, runs of whitespace as one space."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return " ".join(text.casefold().split())


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def same(got: Any, expected: Any) -> bool:
    """`equals`: null only matches null (or an absent field); numbers match by value; anything
    else matches when its text is the same once case-folded and stripped of surrounding
    whitespace (`" BH-20931 "` equals `"bh-20931"`; `"Devon"` does not equal `"Dev"`)."""
    if got is None or expected is None:
        return got is None and expected is None
    if _is_number(got) and _is_number(expected):
        return float(got) == float(expected)

    def text(value: Any) -> str:
        return value if isinstance(value, str) else json.dumps(value, sort_keys=True)

    return text(got).strip().casefold() == text(expected).strip().casefold()


def mentions(text: Any, needle: Any) -> bool:
    """`contains`: the needle appears in the text as whole words, both case-folded with
    whitespace runs as one space (`"Hi Dev,"` mentions `"dev"`; `"Hi Devon"` does not)."""
    pattern = r"(?<!\w)" + re.escape(_norm(needle)) + r"(?!\w)"
    return re.search(pattern, _norm(text)) is not None


@scorer("schema_validity")
def schema_validity() -> ScoreFn:
    """The output parses (leniently) and conforms to its step's schema."""

    def score(item: ScoreInput) -> ScoreValue:
        if item.candidate.parsed is None:
            text = shown(item.candidate.text, SHOWN)
            return ScoreValue(0.0, f"no JSON: {item.candidate.parse_error} (output {text})")
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
            return ScoreValue(
                0.0, f"not bare JSON: {why} (output {shown(item.candidate.text, SHOWN)})"
            )
        return valid(item)

    return score


@scorer("completeness", fields=("fields",))
def completeness(fields: list[str] | None = None) -> ScoreFn:
    """Share of required fields (the schema's `required`, or `fields`) present and non-empty."""

    def score(item: ScoreInput) -> ScoreValue:
        required = fields if fields is not None else item.schema.get("required", [])
        parsed = item.candidate.parsed or {}
        filled = [f for f in required if parsed.get(f) not in (None, "", [], {})]
        missing = [
            f"{f} empty (got {shown(parsed[f], SHOWN)})" if f in parsed else f"{f} missing"
            for f in required
            if f not in filled
        ]
        return _fraction(filled, missing, "no required fields")

    return score


def _policed(item: ScoreInput, policy: Policy) -> str | None:
    """The text a policy checks: its field of the output (None when the output lacks it), or
    the whole output when it names no field."""
    if not policy.field:
        return item.candidate.text
    parsed = item.candidate.parsed
    value = parsed.get(policy.field) if isinstance(parsed, dict) else None
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value)


def _missing(item: ScoreInput, policy: Policy) -> str:
    text = shown(item.candidate.text, SHOWN)
    return f"{policy.field}: not in the output, so its policy cannot hold (output {text})"


def _length(policy: Policy, text: str) -> tuple[bool, str]:
    words = len(text.split())
    label = policy.field or "output"
    why = f"{label}: {words} words (max {policy.max_words})"
    over = words > policy.max_words
    return over, f"{why}: {shown(text, SHOWN)}" if over else why


@scorer("overlong")
def overlong() -> ScoreFn:
    """1 (a flag, not a grade) when a policed field has more words than its max_words."""

    def score(item: ScoreInput) -> ScoreValue:
        limits = [policy for policy in item.policies if policy.max_words]
        if not limits:
            return ScoreValue(0.0, f"no max_words policy for step {item.candidate.step!r}")
        flagged, notes = False, []
        for policy in limits:
            text = _policed(item, policy)
            if text is None:
                notes.append(f"{policy.field}: not in the output, not measured")
                continue
            over, why = _length(policy, text)
            flagged, notes = flagged or over, [*notes, why]
        return ScoreValue(float(flagged), "; ".join(notes))

    return score


def _excerpt(text: str, phrase: str) -> str:
    """The phrase in its context, for a forbidden-phrase failure."""
    at = text.find(phrase)
    start, end = max(0, at - 20), at + len(phrase) + 20
    return ("..." if start else "") + text[start:end] + ("..." if end < len(text) else "")


def _tool_checks(calls: Any, allowed_tools: dict[str, list[str]]) -> tuple[list[str], list[str]]:
    passed, failed = [], []
    for call in calls if isinstance(calls, list) else []:
        name = call.get("name") if isinstance(call, dict) else None
        args = set((call.get("arguments") or {}) if isinstance(call, dict) else {})
        allowed = allowed_tools.get(name) if isinstance(name, str) else None
        if allowed is None:
            failed.append(f"tool {name!r} is not allowed (call {shown(call, SHOWN)})")
        elif extra := sorted(args - set(allowed)):
            failed.append(f"tool {name!r} got arguments {extra} it does not allow")
        else:
            passed.append(f"tool {name!r}")
    return passed, failed


@scorer("policy_compliance")
def policy_compliance() -> ScoreFn:
    """Share of the step's policies that hold: length, forbidden phrases, allowed tools."""

    def score(item: ScoreInput) -> ScoreValue:
        passed: list[str] = []
        failed: list[str] = []
        for policy in item.policies:
            text = _policed(item, policy)
            if text is None:
                failed.append(_missing(item, policy))
                continue
            if policy.max_words:
                over, why = _length(policy, text)
                (failed if over else passed).append(why)
            normalised = _norm(text)
            for phrase in policy.forbidden_phrases:
                if _norm(phrase) in normalised:
                    shown_at = _excerpt(normalised, _norm(phrase))
                    failed.append(
                        f"forbidden {phrase!r} in {policy.field or 'output'}: {shown_at!r}"
                    )
                else:
                    passed.append(f"forbidden {phrase!r}")
            if policy.allowed_tools:
                calls = (item.candidate.parsed or {}).get(policy.field or "tool_calls")
                ok, bad = _tool_checks(calls, policy.allowed_tools)
                passed, failed = passed + ok, failed + bad
        return _fraction(passed, failed, "no policies apply")

    return score


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def _numbers(value: Any) -> set[float]:
    text = json.dumps(value) if not isinstance(value, str) else value
    return {float(n) for n in _NUMBER.findall(text.replace(",", ""))}


@scorer(
    "reference_consistency",
    fields=("equals", "contains", "chain_fields", "figures_field"),
    variables=("equals", "contains", "figures_from"),
)
def reference_consistency(
    equals: dict[str, str] | None = None,
    contains: dict[str, str] | None = None,
    chain_fields: list[str] | None = None,
    figures_field: str = "",
    figures_from: list[str] | None = None,
) -> ScoreFn:
    """Values that must agree do, on the steps whose schema declares the field.

    equals: output field -> scenario variable it must equal (see `same`: the order id, and
    null when the scenario's is null or absent).
    contains: output field -> scenario variable whose value it must mention (see `mentions`:
    the reply names the customer); a null reference has nothing to mention: not checked.
    chain_fields: fields a later step must keep as the earlier steps gave them (`same`).
    figures_field / figures_from: every number quoted in that output field must come from
    those scenario variables (no invented figures).
    """
    equals, contains = equals or {}, contains or {}
    chain_fields, figures_from = chain_fields or [], figures_from or []

    def score(item: ScoreInput) -> ScoreValue:
        parsed = item.candidate.parsed or {}
        declared = output_fields(item.schema)
        passed: list[str] = []
        failed: list[str] = []
        for field, variable in equals.items():
            if field in declared:
                expected, got = item.scenario.get(variable), parsed.get(field)
                check = f"{field} equals {variable} {shown(expected, SHOWN)}"
                if same(got, expected):
                    passed.append(check)
                else:
                    failed.append(f"{check}: got {shown(got, SHOWN)}")
        for field, variable in contains.items():
            needle = item.scenario.get(variable)
            if field in declared and needle is not None:
                got = parsed.get(field)
                check = f"{field} contains {variable} {shown(needle, SHOWN)}"
                if got is not None and mentions(got, needle):
                    passed.append(check)
                else:
                    failed.append(f"{check}: got {shown(got, SHOWN)}")
        for field in chain_fields:
            if field not in declared:
                continue
            for earlier in item.earlier:
                before = (earlier.parsed or {}).get(field)
                if before is not None:
                    check = f"{field} kept from step {earlier.step!r} {shown(before, SHOWN)}"
                    got = parsed.get(field)
                    if same(got, before):
                        passed.append(check)
                    else:
                        failed.append(f"{check}: got {shown(got, SHOWN)}")
        if figures_field and figures_field in declared:
            allowed = set().union(*(_numbers(item.scenario.get(v, "")) for v in figures_from))
            for figure in sorted(_numbers(parsed.get(figures_field, []))):
                ok = any(abs(figure - a) <= 1e-6 * max(1.0, abs(a)) for a in allowed)
                check = f"figure {figure:g} from the scenario"
                (passed if ok else failed).append(
                    check if ok else f"{check}: {figure:g} is not among {sorted(allowed)}"
                )
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


def _named(value: Any, keys: bool) -> list[tuple[tuple[str | int, ...], Any]]:
    """The names a parameter value holds, with their place in it: a mapping's keys (`keys`)
    or values, a list's items, a string itself."""
    if isinstance(value, dict):
        return [((k,), k if keys else v) for k, v in value.items()]
    if isinstance(value, list):
        return [((i,), v) for i, v in enumerate(value)]
    return [((), value)] if value else []


def _param_problems(
    suite: Suite, doc: YamlDoc, index: int, entry: Registered, params: dict[str, Any]
) -> tuple[list[str], dict[str, Any]]:
    """What is wrong with one scorer's parameters (unknown, mistyped, naming a field no step
    produces or a variable no scenario has), one line each at its line; and the values."""
    name = suite.spec.scorers[index].name
    accepted = inspect.signature(entry.factory).parameters
    problems: list[str] = []
    values: dict[str, Any] = {}

    def at(*loc: str | int) -> tuple[str, str]:
        full = ("scorers", index, "params", *loc)
        return doc.where(full), ".".join(map(str, full))

    for param, value in params.items():
        if param not in accepted:
            where, path = at(param)
            known = list(accepted)
            problems.append(
                f"{where}: {path}: scorer {name!r} has no parameter {param!r} "
                f"(parameters: {known or 'none'}){did_you_mean(param, known)}"
            )
            continue
        annotation = accepted[param].annotation
        if annotation is inspect.Parameter.empty:
            annotation = Any
        try:
            values[param] = TypeAdapter(annotation).validate_python(value)
        except ValidationError as exc:
            errors = [
                e | {"loc": ("scorers", index, "params", param, *e["loc"])} for e in exc.errors()
            ]
            problems.append(describe_errors(errors, doc.where))
    fields = sorted(suite.output_fields)
    variables = sorted(set().union(*(scenario.vars for scenario in suite.scenarios)))
    kinds = (
        (entry.fields, fields, True, "no step's output schema declares", "fields"),
        (entry.variables, variables, False, "no scenario has a variable", "variables"),
    )
    for param, value in values.items():
        for params_of_kind, known, keys, what, label in kinds:
            if param not in params_of_kind:
                continue
            for loc, named in _named(value, keys):
                if isinstance(named, str) and named not in known:
                    where, path = at(param, *loc)
                    problems.append(
                        f"{where}: {path}: {what} {named!r} ({label}: {known})"
                        f"{did_you_mean(named, known)}"
                    )
    return problems, values


def build_scorers(suite: Suite) -> dict[str, ScoreFn]:
    """The suite's scorers, ready to run; refused at plan time, every problem at its line of
    suite.yaml: an unknown scorer or parameter, a mistyped value, a field no step produces, a
    variable no scenario has."""
    doc = suite_doc(suite.path)
    where = suite.path / "suite.yaml"
    unknown = [spec.name for spec in suite.spec.scorers if spec.name not in REGISTRY]
    if unknown:
        raise BenchlibError(
            f"{where}: unknown scorer(s) {unknown}: expected names from {sorted(REGISTRY)}"
        )
    problems = []
    scorers = {}
    for index, spec in enumerate(suite.spec.scorers):
        found, values = _param_problems(suite, doc, index, REGISTRY[spec.name], spec.params)
        problems.extend(found)
        if not found:
            scorers[spec.name] = REGISTRY[spec.name](**values)
    if problems:
        raise BenchlibError("\n".join(problems))
    automatic = [flag.name for flag in suite.rubric.flags if flag.automatic]
    missing = [name for name in automatic if name not in scorers]
    if missing:
        raise BenchlibError(
            f"{suite.path / suite.spec.rubric}: automatic flag(s) {missing} need a scorer of "
            f"that name in {where} (scorers: {sorted(scorers)})"
        )
    return scorers
