import inspect
from pathlib import Path

import pytest

from benchlib.config import BenchmarkConfig, build_config, load_config
from benchlib.errors import BenchlibError
from flows.benchmark import benchmark


def error_of(values: dict) -> str:
    with pytest.raises(BenchlibError) as info:
        build_config(values, source="test.yaml")
    return str(info.value)


def test_defaults_run_the_tips_suite_on_the_embedded_model() -> None:
    config = BenchmarkConfig()
    assert config.suite == "prompts/tips"
    assert config.models == ["local:smollm2-135m"]
    assert config.max_model_b == 4.0
    assert config.attempt_budget == 3 * config.n_candidates


def test_n_tips_is_accepted_as_the_old_name_of_n_candidates() -> None:
    assert build_config({"n_tips": 5}).n_candidates == 5


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"models": ["bogus:model"]}, "unknown provider 'bogus'"),
        ({"models": ["smollm2"]}, "expected 'provider:model'"),
        ({"models": []}, "models"),
        ({"temperature": 3.5}, "temperature"),
        ({"n_candidates": 0}, "n_candidates"),
        ({"max_tokens": -1}, "max_tokens"),
        ({"max_model_b": 0}, "max_model_b"),
        ({"max_inflight": 0}, "max_inflight"),
        ({"temprature": 0.2}, "temprature: Extra inputs are not permitted"),
        ({"prompts": ["v1", "v1"]}, "duplicate prompt versions"),
        ({"max_attempts_per_cell": 2, "n_candidates": 3}, "max_attempts_per_cell (2)"),
        ({"judge": "model"}, "judge_model: judge is 'model', which needs a judge model"),
        ({"judge": "human+model", "judge_model": "smollm2"}, "expected 'provider:model'"),
        (
            {"judge": "model", "judge_model": "local:smollm2-135m"},
            "'local:smollm2-135m' is also one of the judged models",
        ),
        ({"judges": "robots"}, "judges"),
    ],
)
def test_bad_values_name_the_source_field_and_value(values: dict, expected: str) -> None:
    message = error_of(values)
    assert message.startswith("test.yaml")
    assert expected in message


def test_ollama_model_tags_keep_their_colon() -> None:
    spec = build_config({"models": ["ollama:qwen2.5:0.5b"]}).model_specs[0]
    assert (spec.provider, spec.model) == ("ollama", "qwen2.5:0.5b")


def test_yaml_file_then_overrides(tmp_path: Path) -> None:
    path = tmp_path / "bench.yaml"
    path.write_text("n_tips: 2\ntemperature: 0.1\nprompts: [v1]\n")
    config = load_config(path, temperature=0.0, seed=None)
    assert (config.n_candidates, config.temperature, config.prompts) == (2, 0.0, ["v1"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [("models: [a\n", "not valid YAML"), ("- 1\n- 2\n", "expected a mapping")],
)
def test_broken_yaml_is_reported_with_the_file(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(BenchlibError, match=expected) as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_flow_parameters_are_the_config_keys_with_the_same_defaults() -> None:
    parameters = inspect.signature(benchmark.fn).parameters
    defaults = BenchmarkConfig().model_dump()
    assert list(parameters) == list(defaults)
    assert {name: p.default for name, p in parameters.items()} == defaults


@pytest.mark.parametrize(
    "given",
    [
        "ollama:a:1b,openai:b",
        "ollama:a:1b, openai:b",
        ["ollama:a:1b,openai:b"],
        ["ollama:a:1b", "openai:b"],
    ],
)
def test_comma_separated_lists_are_lists(given: str | list[str]) -> None:
    config = build_config({"models": given, "prompts": "v1,v2-mentor"})
    assert config.models == ["ollama:a:1b", "openai:b"]
    assert config.prompts == ["v1", "v2-mentor"]


@pytest.mark.parametrize(
    ("spec", "meant"),
    [("qwen2.5:0.5b", "ollama:qwen2.5:0.5b"), ("olama:llama3:latest", "ollama:llama3:latest")],
)
def test_a_spec_that_looks_like_an_ollama_tag_gets_a_suggestion(spec: str, meant: str) -> None:
    assert f"did you mean '{meant}'?" in error_of({"models": [spec]})


def test_deployment_parameters_take_comma_separated_lists() -> None:
    """Prefect validates a deployment's parameters against the flow's signature before our
    config sees them: the signature must let a string through for the list keys."""
    checked = benchmark.validate_parameters({"models": "local:a,openai:b", "prompts": "v1,v2"})
    config = build_config(checked)
    assert (config.models, config.prompts) == (["local:a", "openai:b"], ["v1", "v2"])


def test_the_cli_splits_list_options_and_knows_old_names() -> None:
    from tests.support.cli import benchlib

    result = benchlib("run", "prompts/tips", "--model", "local:smollm2-135m,bogus:x")
    assert result.returncode == 2 and "unknown provider 'bogus'" in result.stderr, result.stderr
    result = benchlib("run", "prompts/tips", "--n-tips", "0")
    assert result.returncode == 2 and "n_candidates" in result.stderr, result.stderr
