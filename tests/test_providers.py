"""Providers against real servers: the embedded llama.cpp server, an Ollama-API server in front
of it, and a loopback server that fails on purpose."""

import json
import shutil
from pathlib import Path

import httpx
import ollama
import pytest

from benchlib.config import build_config
from benchlib.errors import BenchlibError, ProviderError
from benchlib.modelspec import ModelSpec
from benchlib.preflight import preflight_models
from benchlib.providers import AttemptBudget, CallRecord, ChatRequest
from benchlib.providers.local import LocalProvider, ServerPool, embedded_model_path
from benchlib.providers.ollama import OllamaProvider, parameter_size_b
from benchlib.providers.openai import OpenAIProvider
from tests.support.faults import flaky_app
from tests.support.servers import free_port, serve_app

SCHEMA = {
    "type": "object",
    "properties": {
        "tip": {"type": "string", "maxLength": 80},
        "category": {"type": "string", "maxLength": 20},
    },
    "required": ["tip", "category"],
}


def request(**overrides) -> ChatRequest:
    values = {
        "messages": [{"role": "user", "content": "Give one productivity tip as JSON."}],
        "temperature": 0.0,
        "seed": 7,
        "max_tokens": 32,
    }
    return ChatRequest(**(values | overrides))


def openai(url: str, model: str = "smollm2") -> OpenAIProvider:
    return OpenAIProvider(ModelSpec(provider="openai", model=model), f"{url}/v1", timeout_s=60)


def test_openai_compatible_chat_records_tokens_and_is_reproducible(llm_url: str) -> None:
    provider = openai(llm_url)
    assert provider.preflight().size_b == pytest.approx(0.1345, abs=0.001)
    calls: list[CallRecord] = []
    first = provider.chat(request(), AttemptBudget(5), calls)
    second = provider.chat(request(), AttemptBudget(5), calls)
    assert first.text and first.text == second.text
    assert first.completion_tokens > 0 and first.prompt_tokens > 0 and first.latency_s > 0
    assert [c.attempt for c in calls] == [1, 1]
    assert calls[0].response["choices"][0]["message"]["content"] == first.text


def test_structured_output_is_bare_json_matching_the_schema(llm_url: str) -> None:
    result = openai(llm_url).chat(
        request(response_schema=SCHEMA, max_tokens=96), AttemptBudget(1), []
    )
    assert set(json.loads(result.text)) >= {"tip", "category"}


def test_unknown_model_and_unreachable_endpoint_are_clear(llm_url: str) -> None:
    with pytest.raises(BenchlibError, match=r"unknown model 'gpt-9'.*expected one of"):
        openai(llm_url, "gpt-9").preflight()
    with pytest.raises(BenchlibError, match="unreachable"):
        openai(f"http://127.0.0.1:{free_port()}").preflight()


def test_size_guard_refuses_a_model_over_max_model_b(llm_url: str) -> None:
    config = build_config(
        {"models": ["openai:smollm2"], "openai_base_url": f"{llm_url}/v1", "max_model_b": 0.1}
    )
    with pytest.raises(BenchlibError, match=r"openai:smollm2: model has 0\.13B parameters.*0\.1B"):
        preflight_models(config)


def test_transient_failures_are_retried_and_logged(llm_url: str) -> None:
    with serve_app(flaky_app(llm_url, [503, 429])) as url:
        calls: list[CallRecord] = []
        result = openai(url).chat(request(), AttemptBudget(5), calls)
    assert result.text
    assert [c.status_code for c in calls] == [503, 429, 200]
    assert "injected 503" in calls[0].error


def test_a_refusal_fails_at_once_with_the_providers_message(llm_url: str) -> None:
    with serve_app(flaky_app(llm_url, [400])) as url:
        calls: list[CallRecord] = []
        with pytest.raises(ProviderError, match="HTTP 400: injected 400"):
            openai(url).chat(request(), AttemptBudget(5), calls)
    assert len(calls) == 1


def test_the_attempt_budget_caps_retries(llm_url: str) -> None:
    with serve_app(flaky_app(llm_url, [503] * 5)) as url:
        calls: list[CallRecord] = []
        with pytest.raises(ProviderError, match="attempt budget exhausted: 2 provider calls"):
            openai(url).chat(request(), AttemptBudget(2), calls)
    assert len(calls) == 2


def test_the_ollama_shim_speaks_the_ollama_api(ollama_server) -> None:
    url, _ = ollama_server
    client = ollama.Client(host=url)
    answer = client.chat(model="smollm2:135m", messages=[{"role": "user", "content": "Hi"}])
    assert answer.message.content and answer.eval_count > 0
    assert client.show("smollm2:135m").details.parameter_size == "134.52M"


def test_ollama_provider_checks_size_chats_and_unloads(ollama_server) -> None:
    url, state = ollama_server
    unloads = state.unloads
    provider = OllamaProvider(ModelSpec.parse("ollama:smollm2:135m"), url, timeout_s=60)
    info = provider.preflight()
    assert info.size_b == pytest.approx(0.1345, abs=0.001) and info.digest
    calls: list[CallRecord] = []
    result = provider.chat(request(response_schema=SCHEMA, max_tokens=96), AttemptBudget(3), calls)
    assert set(json.loads(result.text)) >= {"tip", "category"}
    assert result.completion_tokens > 0
    assert state.keep_alive_seen[-1] == "30m"
    provider.unload()
    assert state.loaded is None and state.unloads == unloads + 1


def test_ollama_unknown_model_says_how_to_pull_it(ollama_server) -> None:
    url, _ = ollama_server
    with pytest.raises(BenchlibError, match=r"not found on Ollama.*ollama pull qwen9"):
        OllamaProvider(ModelSpec.parse("ollama:qwen9"), url, timeout_s=5).preflight()


@pytest.mark.parametrize(("label", "size"), [("494.03M", 0.49403), ("7.6B", 7.6), ("", None)])
def test_ollama_parameter_size_labels(label: str, size: float | None) -> None:
    assert parameter_size_b(label) == (pytest.approx(size) if size else None)


def test_local_provider_loads_one_model_at_a_time(tmp_path: Path, monkeypatch) -> None:
    copy = tmp_path / "other.gguf"
    shutil.copy(embedded_model_path(), copy)
    pool = ServerPool()
    monkeypatch.setattr("benchlib.providers.local.servers", pool)
    aliases = {"copy": str(copy)}
    first = LocalProvider(ModelSpec.parse("local:smollm2-135m"), aliases, timeout_s=60)
    second = LocalProvider(ModelSpec.parse("local:copy"), aliases, timeout_s=60)
    info = first.preflight()
    assert info.size_b == pytest.approx(0.1345, abs=0.001) and info.digest
    assert first.load() == 0.0  # already running: no second load
    assert first.chat(request(), AttemptBudget(1), []).text
    assert second.load() > 0
    with pytest.raises(httpx.TransportError):  # the first model's server was stopped
        httpx.get(f"{first.base_url}/models", timeout=2)
    assert second.chat(request(), AttemptBudget(1), []).text
    assert pool.loads == 2
    pool.stop_all()


def test_unknown_local_model_lists_what_is_accepted() -> None:
    with pytest.raises(BenchlibError, match="local:tiny: unknown local model"):
        LocalProvider(ModelSpec.parse("local:tiny"), {}, timeout_s=5)
