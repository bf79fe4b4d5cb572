"""Every scorer on hand-made outputs that hit its edges."""

import json
from pathlib import Path

import pytest
import yaml

from benchlib.errors import BenchlibError
from benchlib.hashing import content_hash
from benchlib.parsing import parse_json_output
from benchlib.records import Candidate
from benchlib.scorers import REGISTRY, ScoreInput, build_scorers
from benchlib.suite import Policies, load_suite
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
        policies=context.pop("policies", Policies()),
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
    assert "summary missing or empty" in partial.explanation
    assert score("completeness", out("{}"), {"fields": []}).value == 1.0


def test_policy_compliance_length_phrases_and_tools() -> None:
    policies = Policies(
        text_field="summary",
        max_words=5,
        forbidden_phrases=["risk-free"],
        allowed_tools={"quote": ["ticker"]},
    )
    assert score("policy_compliance", out(GOOD), policies=policies).value == 1.0
    long = GOOD.replace("Fair price.", "A risk-free and very fair price today.")
    result = score("policy_compliance", out(long), policies=policies)
    assert result.value == 0.0 and "7 words (max 5)" in result.explanation
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
        "policy_compliance", out(calls), policies=Policies(allowed_tools={"quote": ["ticker"]})
    )
    assert tools.value == pytest.approx(1 / 3)
    assert "'trade' is not allowed" in tools.explanation and "['limit']" in tools.explanation
    assert score("policy_compliance", out("anything")).explanation == "no policies apply"


def test_overlong_flag() -> None:
    policies = Policies(text_field="summary", max_words=1)
    assert score("overlong", out(GOOD), policies=policies).value == 1.0
    assert score("overlong", out(GOOD), policies=Policies(max_words=50)).value == 0.0


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
    assert "instrument names ticker 'ko'" in result.explanation
    assert "figure 99.9" in result.explanation


def test_reference_consistency_across_a_chain() -> None:
    bull = out('{"instrument": "KO", "thesis": "x", "figures": []}', step="bull")
    moderator = out(GOOD.replace('"KO"', '"ko "'), step="moderator", step_index=1)
    kept = score(
        "reference_consistency", moderator, {"chain_fields": ["instrument"]}, earlier=[bull]
    )
    assert kept.value == 1.0
    drifted = out(GOOD.replace('"KO"', '"KOF"'), step="moderator", step_index=1)
    lost = score("reference_consistency", drifted, {"chain_fields": ["instrument"]}, earlier=[bull])
    assert lost.value == 0.0 and "kept from step 'bull'" in lost.explanation


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
            "scorer 'completeness': bad params",
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
