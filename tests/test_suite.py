from pathlib import Path

import pytest
import yaml

from benchlib.config import build_config
from benchlib.errors import BenchlibError
from benchlib.evaluation.scorers import build_scorers
from benchlib.generation.providers import ModelInfo
from benchlib.spec.grid import check_templates, expand_grid
from benchlib.spec.suite import load_suite
from tests.conftest import TIPS
from tests.support.suites import write_suite


def test_tips_suite_has_three_versions_and_eight_stable_scenarios() -> None:
    suite = load_suite(TIPS)
    assert list(suite.versions) == ["v1", "v2-mentor", "v3-few-shot"]
    assert len(suite.scenarios) == 8
    assert suite.scenarios[0].id == "developer-morning"
    again = load_suite(TIPS)
    assert [(s.id, s.hash) for s in suite.scenarios] == [(s.id, s.hash) for s in again.scenarios]
    assert len({s.hash for s in suite.scenarios}) == 8
    assert suite.rubric.version == "tip-v1"


def test_rubric_describes_every_level_with_an_example() -> None:
    rubric = load_suite(TIPS).rubric
    assert [c.name for c in rubric.criteria] == ["relevance", "actionability", "tone"]
    for criterion in rubric.criteria:
        assert criterion.scores == [1, 2, 3, 4, 5]
        assert all(level.example for level in criterion.levels)
    values = {"relevance": 4, "actionability": 3, "tone": 5, "format_ok": 1, "overlong": 1}
    assert rubric.composite_score(values) == 4 + 3 + 5 + 2 - 1
    assert rubric.composite_score({"format_ok": 1, "overlong": 0}) is None


def version_hash(folder: Path, name: str) -> str:
    suite = load_suite(folder)
    return suite.version_hash(suite.versions[name])


def test_prompt_hash_changes_with_the_text_and_the_schema(suite_copy: Path) -> None:
    before = version_hash(suite_copy, "v1")
    path = suite_copy / "versions" / "v1.yaml"
    path.write_text(path.read_text().replace("short", "brief"))
    after_text = version_hash(suite_copy, "v1")
    schema = suite_copy / "schema.json"
    schema.write_text(schema.read_text().replace('"wellbeing"', '"health"'))
    assert len({before, after_text, version_hash(suite_copy, "v1")}) == 3


def test_grid_is_model_major() -> None:
    config = build_config({"models": ["openai:a", "openai:b"], "n_scenarios": 2})
    info = {m: ModelInfo(spec=m) for m in config.models}
    cells = expand_grid("r", config, load_suite(TIPS), info)
    assert len(cells) == 2 * 3 * 2
    assert [c.model for c in cells] == ["openai:a"] * 6 + ["openai:b"] * 6
    assert len({c.identity for c in cells}) == 12


def edit_yaml(path: Path, change) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_missing_template_variable_names_file_variable_and_scenario(suite_copy: Path) -> None:
    path = suite_copy / "versions" / "v1.yaml"
    edit_yaml(path, lambda d: d.update(user=d["user"] + " Mood: {{ mood }}"))
    suite = load_suite(suite_copy)
    with pytest.raises(BenchlibError) as info:
        check_templates(suite, [suite.versions["v1"]], suite.scenarios[:1])
    message = str(info.value)
    # yaml.safe_dump writes the template quoted, from line 3 (a literal block: the exact line).
    assert "v1.yaml:3: uses 'mood', which scenario 'developer-morning'" in message


def test_a_template_variable_typo_is_shown_where_it_is_read_with_the_likely_name(
    suite_copy: Path,
) -> None:
    path = suite_copy / "versions" / "v2-mentor.yaml"
    text = path.read_text()
    assert text.count("{{ tasks }}") == 1
    path.write_text(text.replace("{{ tasks }}", "{{ taks }}"))
    suite = load_suite(suite_copy)
    with pytest.raises(BenchlibError) as info:
        check_templates(suite, [suite.versions["v2-mentor"]], suite.scenarios)
    line = next(n for n, row in enumerate(path.read_text().splitlines(), 1) if "taks" in row)
    assert (
        f"v2-mentor.yaml:{line}: uses 'taks', which scenario 'developer-morning' (and 7 more)"
        in (str(info.value))
    )
    assert str(info.value).endswith("; did you mean 'tasks'?")


def test_unknown_prompt_version_lists_the_known_ones() -> None:
    with pytest.raises(BenchlibError, match=r"unknown prompt version\(s\) \['v9'\].*'v1'"):
        load_suite(TIPS).select_versions(["v9"])


@pytest.mark.parametrize(
    ("file", "change", "expected"),
    [
        (
            "rubric.yaml",
            lambda d: d["composite"].update(clarity=1),
            "composite.clarity: composite names 'clarity', which is neither",
        ),
        ("rubric.yaml", lambda d: d["criteria"][0]["levels"].pop(2), "consecutive scores"),
        ("rubric.yaml", lambda d: d["criteria"][0].pop("levels"), "levels"),
        ("suite.yaml", lambda d: d.update(colour="red"), "colour"),
        (
            "scenarios.yaml",
            lambda d: d["matrix"]["persona"].append(d["matrix"]["persona"][0]),
            "duplicate scenario ids",
        ),
    ],
)
def test_malformed_suite_files_are_refused(suite_copy: Path, file, change, expected) -> None:
    edit_yaml(suite_copy / file, change)
    with pytest.raises(BenchlibError) as info:
        load_suite(suite_copy)
    assert expected in str(info.value)
    assert file in str(info.value)


def test_invalid_yaml_and_schema_are_refused(suite_copy: Path) -> None:
    (suite_copy / "versions" / "v1.yaml").write_text("user: [unclosed\n")
    with pytest.raises(BenchlibError, match=r"v1\.yaml:2: not valid YAML"):
        load_suite(suite_copy)
    (suite_copy / "versions" / "v1.yaml").write_text("user: hi\n")
    (suite_copy / "schema.json").write_text('{"type": "objekt"}')
    with pytest.raises(BenchlibError, match=r"schema\.json:1: not a valid JSON Schema at type:"):
        load_suite(suite_copy)


def test_unknown_scorer_is_refused(suite_copy: Path) -> None:
    edit_yaml(suite_copy / "suite.yaml", lambda d: d.update(scorers=["format_ok", "vibes"]))
    with pytest.raises(BenchlibError, match=r"unknown scorer\(s\) \['vibes'\]"):
        build_scorers(load_suite(suite_copy))


def test_a_second_suite_needs_no_code(tmp_path: Path) -> None:
    scenarios = "scenarios:\n  - {id: a, word: hi}\n"
    folder = write_suite(tmp_path / "echo", "Say {{ word }} as JSON", scenarios)
    suite = load_suite(folder)
    assert suite.versions["plain"].steps[0].render(suite.scenarios[0].vars) == [
        {"role": "user", "content": "Say hi as JSON"}
    ]
