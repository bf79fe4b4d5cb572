"""Every scorer on hand-made outputs that hit its edges."""

import json
import shutil
from pathlib import Path

import pytest
import yaml

from benchlib.errors import BenchlibError
from benchlib.evaluation.parsing import parse_json_output
from benchlib.evaluation.scorers import REGISTRY, ScoreInput, build_scorers
from benchlib.spec.hashing import content_hash
from benchlib.spec.suite import Policy, load_suite
from benchlib.store.records import Candidate
from tests.conftest import ROOT

ANALYST = json.loads((ROOT / "prompts/analysts/schemas/analyst.json").read_text())
SCENARIO = {"ticker": "KO", "price": 61.2, "pe_ratio": 24.3, "revenue_growth_pct": 3.4}


def out(text: str, step: str = "output", step_index: int = 0, **extra) -> Candidate:
    parsed, error = parse_json_output(text)
    return Candidate(
        run_id="r",
        cell_id="c",
        index=0,
        step=step,
        step_index=step_index,
        seed=0,
        messages=[],
        text=text,
        parsed=parsed,
        parse_error=error,
        output_hash=content_hash(text),
        **extra,
    )


def score(name: str, candidate: Candidate, params: dict | None = None, **context):
    item = ScoreInput(
        candidate=candidate,
        schema=context.pop("schema", ANALYST),
        policies=context.pop("policies", []),
        scenario=context.pop("scenario", SCENARIO),
        siblings=context.pop("siblings", []),
        earlier=context.pop("earlier", []),
    )
    return REGISTRY[name](**(params or {}))(item)


GOOD = '{"instrument": "KO", "rating": "hold", "summary": "Fair price.", "figures": [24.3, 3.4]}'


@pytest.mark.parametrize(
    ("text", "value", "why"),
    [
        (GOOD, 1.0, "valid"),
        ("Sure! ```json\n" + GOOD + "\n```", 1.0, "valid"),
        (GOOD.replace('"hold"', '"maybe"'), 0.0, "rating: 'maybe' is not one of"),
        ('{"instrument": "KO"}', 0.0, "'rating' is a required property"),
        ("", 0.0, "empty output"),
        ('{"instrument": "KO", "rating": "ho', 0.0, "no JSON object"),
    ],
)
def test_schema_validity(text: str, value: float, why: str) -> None:
    result = score("schema_validity", out(text))
    assert result.value == value and why in result.explanation


def test_format_ok_wants_the_bare_object() -> None:
    assert score("format_ok", out(GOOD)).value == 1.0
    fenced = score("format_ok", out("```json\n" + GOOD + "\n```"))
    assert fenced.value == 0.0 and "wrapped in other text" in fenced.explanation
    cut = score("format_ok", out(GOOD[:30], finish_reason="length"))
    assert "cut at max_tokens" in cut.explanation


def test_completeness_counts_present_non_empty_fields() -> None:
    assert score("completeness", out(GOOD)).value == 1.0
    partial = score("completeness", out('{"instrument": "KO", "summary": "", "figures": []}'))
    assert partial.value == 0.25
    assert (
        "summary empty (got '')" in partial.explanation and "rating missing" in partial.explanation
    )
    assert score("completeness", out("{}"), {"fields": []}).value == 1.0


def test_policy_compliance_length_phrases_and_tools() -> None:
    policies = [
        Policy(field="summary", max_words=5, forbidden_phrases=["risk-free"]),
        Policy(allowed_tools={"quote": ["ticker"]}),
    ]
    assert score("policy_compliance", out(GOOD), policies=policies).value == 1.0
    long = GOOD.replace("Fair price.", "A risk-free and very fair price today.")
    result = score("policy_compliance", out(long), policies=policies)
    assert result.value == 0.0
    assert (
        "summary: 7 words (max 5): 'A risk-free and very fair price today.'" in result.explanation
    )
    assert "forbidden 'risk-free' in summary: 'a risk-free and very fair" in result.explanation
    calls = json.dumps(
        {
            "tool_calls": [
                {"name": "quote", "arguments": {"ticker": "KO"}},
                {"name": "quote", "arguments": {"ticker": "KO", "limit": 5}},
                {"name": "trade", "arguments": {}},
            ]
        }
    )
    tools = score(
        "policy_compliance", out(calls), policies=[Policy(allowed_tools={"quote": ["ticker"]})]
    )
    assert tools.value == pytest.approx(1 / 3)
    assert "'trade' is not allowed" in tools.explanation and "['limit']" in tools.explanation
    assert score("policy_compliance", out("anything")).explanation == "no policies apply"


def test_overlong_flag() -> None:
    policies = [Policy(field="summary", max_words=1)]
    flagged = score("overlong", out(GOOD), policies=policies)
    assert flagged == (1.0, "summary: 2 words (max 1): 'Fair price.'")
    assert score("overlong", out(GOOD), policies=[Policy(max_words=50)]).value == 0.0
    assert score("overlong", out(GOOD)).explanation == "no max_words policy for step 'output'"


def test_a_policy_on_a_field_checks_that_field_not_the_raw_output() -> None:
    """The reply's limit is not applied to a whole JSON object; an output without the field
    cannot meet its policy, and the explanation quotes what came instead."""
    policies = [Policy(field="summary", max_words=3, forbidden_phrases=["hold"])]
    held = score("policy_compliance", out(GOOD), policies=policies)  # "hold" is the rating
    assert held == (1.0, "all 2 checks pass")
    missing = score("policy_compliance", out('{"rating": "hold"}'), policies=policies)
    assert missing.value == 0.0
    assert "summary: not in the output" in missing.explanation
    assert """'{"rating": "hold"}'""" in missing.explanation
    cut = score("policy_compliance", out("x " * 200), policies=[Policy(max_words=3)])
    assert "output: 200 words (max 3): 'x x x" in cut.explanation and len(cut.explanation) < 120


REFS = {
    "equals": {"instrument": "ticker"},
    "chain_fields": ["instrument"],
    "figures_field": "figures",
    "figures_from": ["price", "pe_ratio", "revenue_growth_pct"],
}


def test_reference_consistency_right_and_wrong_references() -> None:
    assert score("reference_consistency", out(GOOD), REFS).value == 1.0
    wrong = GOOD.replace('"KO"', '"PEP"').replace("24.3", "99.9")
    result = score("reference_consistency", out(wrong), REFS)
    assert result.value == pytest.approx(1 / 3)
    assert "instrument equals ticker 'KO': got 'PEP'" in result.explanation
    assert (
        "figure 99.9 from the scenario: 99.9 is not among [3.4, 24.3, 61.2]" in result.explanation
    )


ORDER = {"type": "object", "properties": {"order_id": {}, "reply": {}}}


def equals(got: object, expected: object) -> tuple[float, str]:
    output = out(json.dumps({} if got is ... else {"order_id": got}))
    params = {"equals": {"order_id": "order_id"}}
    scenario = {} if expected is ... else {"order_id": expected}
    return score("reference_consistency", output, params, schema=ORDER, scenario=scenario)


@pytest.mark.parametrize(
    ("got", "expected", "value"),
    [
        ("BH-20931", "BH-20931", 1.0),
        ("  bh-20931 ", "BH-20931", 1.0),  # case and surrounding whitespace only
        ("my order is BH-20931, thanks", "BH-20931", 0.0),  # a sentence holding it is not it
        ("Devon", "Dev", 0.0),
        ("BH-none", None, 0.0),  # an expected null matches only null
        ("", None, 0.0),
        (None, None, 1.0),
        (..., None, 1.0),  # the field absent from the output
        (None, ..., 1.0),  # the variable absent from the scenario: null too
        (None, "BH-20931", 0.0),
        (20931, "20931", 1.0),
        (20931.0, 20931, 1.0),
        ("BH 20931", "BH-20931", 0.0),
    ],
)
def test_equals_is_equality_after_case_and_whitespace(got, expected, value) -> None:
    assert equals(got, expected).value == value


def test_a_failed_equals_shows_the_output_value() -> None:
    sentence = "Hello, my order number is BH-20931 and it never arrived at my house " * 3
    result = equals(sentence, "BH-20931")
    assert result.explanation.startswith("failed: order_id equals order_id 'BH-20931': got 'Hello")
    assert result.explanation.endswith("...") and len(result.explanation) < 140
    assert (
        equals("BH-none", None).explanation
        == "failed: order_id equals order_id None: got 'BH-none'"
    )


@pytest.mark.parametrize(
    ("reply", "customer", "value"),
    [
        ("Hi Dev, your refund is on its way.", "Dev", 1.0),
        ("hi  DEV ANAND, thanks", "Dev Anand", 1.0),
        ("Hi Devon, your refund is on its way.", "Dev", 0.0),  # whole words only
        ("Hello, your refund is on its way.", "Dev", 0.0),
    ],
)
def test_contains_wants_the_reference_as_whole_words(reply, customer, value) -> None:
    result = score(
        "reference_consistency",
        out(json.dumps({"reply": reply})),
        {"contains": {"reply": "customer"}},
        schema=ORDER,
        scenario={"customer": customer},
    )
    assert result.value == value
    if not value:
        assert f"reply contains customer {customer!r}: got {reply!r}" in result.explanation


def test_contains_has_nothing_to_look_for_in_a_null_reference() -> None:
    output = out(json.dumps({"reply": "Hello there"}))
    result = score(
        "reference_consistency",
        output,
        {"contains": {"reply": "customer"}},
        schema=ORDER,
        scenario={"customer": None},
    )
    assert result == (1.0, "nothing to check")


def test_reference_consistency_across_a_chain() -> None:
    bull = out('{"instrument": "KO", "thesis": "x", "figures": []}', step="bull")
    moderator = out(GOOD.replace('"KO"', '"ko "'), step="moderator", step_index=1)
    kept = score(
        "reference_consistency", moderator, {"chain_fields": ["instrument"]}, earlier=[bull]
    )
    assert kept.value == 1.0
    drifted = out(GOOD.replace('"KO"', '"KOF"'), step="moderator", step_index=1)
    lost = score("reference_consistency", drifted, {"chain_fields": ["instrument"]}, earlier=[bull])
    assert lost.value == 0.0 and "kept from step 'bull' 'KO': got 'KOF'" in lost.explanation


def test_reference_checks_only_fields_the_schema_declares() -> None:
    result = score("reference_consistency", out('{"tip": "x"}'), REFS, schema={"type": "object"})
    assert (result.value, result.explanation) == (1.0, "nothing to check")


def test_stability_across_attempts() -> None:
    same = [out(GOOD), out(GOOD)]
    assert score("stability", out(GOOD), siblings=same).value == 1.0
    assert "exact match with 100% of 2" in score("stability", out(GOOD), siblings=same).explanation
    other = [out('{"instrument": "KO", "rating": "sell"}')]
    unstable = score("stability", out(GOOD), siblings=other)
    assert 0 < unstable.value < 1 and "0%" in unstable.explanation
    assert score("stability", out(GOOD)).explanation == "single attempt"


def edit(path: Path, change) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.mark.parametrize(
    ("file", "change", "expected"),
    [
        ("suite.yaml", lambda d: d["scorers"].append("vibes"), "unknown scorer(s) ['vibes']"),
        (
            "suite.yaml",
            lambda d: d["scorers"].append({"name": "completeness", "params": {"fieldz": []}}),
            "scorers.6.params.fieldz: scorer 'completeness' has no parameter 'fieldz' "
            "(parameters: ['fields']); did you mean 'fields'?",
        ),
        (
            "suite.yaml",
            lambda d: d.update(scorers=["schema_validity"]),
            "automatic flag(s) ['format_ok', 'overlong'] need a scorer",
        ),
    ],
)
def test_bad_scorer_configuration_is_refused(suite_copy: Path, file, change, expected) -> None:
    edit(suite_copy / file, change)
    with pytest.raises(BenchlibError) as info:
        build_scorers(load_suite(suite_copy))
    assert expected in str(info.value) and file in str(info.value)


def test_chains_may_only_read_earlier_steps(tmp_path: Path) -> None:
    folder = tmp_path / "suite"
    (folder / "versions").mkdir(parents=True)
    (folder / "suite.yaml").write_text("name: s\n")
    (folder / "scenarios.yaml").write_text("scenarios: [{id: a}]\n")
    (folder / "schema.json").write_text("{}")
    (folder / "rubric.yaml").write_text((ROOT / "prompts/tips/rubric.yaml").read_text())
    (folder / "versions" / "v.yaml").write_text(
        "steps:\n  - {name: a, user: '{{ steps.b.x }}'}\n  - {name: b, user: hi}\n"
    )
    with pytest.raises(BenchlibError, match=r"step 'a' reads steps \['b'\], which do not come"):
        load_suite(folder)


ANALYSTS = ROOT / "prompts" / "analysts"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "chain_fields: [instrument]",
            "chain_fields: instrument",
            "suite.yaml:24: scorers.4.params.chain_fields: Input should be a valid list "
            "(got 'instrument')",
        ),
        (
            "equals: {instrument: ticker}",
            "equals: {instrument: ticker, rating: verdict}",
            "suite.yaml:23: scorers.4.params.equals.rating: no scenario has a variable 'verdict'",
        ),
        (
            "figures_from: [price,",
            "figures_from: [prices,",
            "suite.yaml:26: scorers.4.params.figures_from.0: no scenario has a variable "
            "'prices' (variables: ['company', 'dividend_yield_pct',",
        ),
        (
            "figures_field: figures",
            "figures_field: numbers",
            "suite.yaml:25: scorers.4.params.figures_field: no step's output schema declares "
            "'numbers' (fields: ['figures', 'instrument', 'rating', 'summary', 'thesis'])",
        ),
    ],
)
def test_reference_parameters_are_checked_against_scenarios_and_schemas(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    folder = shutil.copytree(ANALYSTS, tmp_path / "analysts")
    text = (folder / "suite.yaml").read_text()
    assert old in text
    (folder / "suite.yaml").write_text(text.replace(old, new))
    with pytest.raises(BenchlibError) as info:
        build_scorers(load_suite(folder))
    assert f"{folder}/{expected}" in str(info.value)
