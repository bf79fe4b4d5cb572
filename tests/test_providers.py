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
from benchlib.generation.modelspec import ModelSpec
from benchlib.generation.preflight import preflight_models
from benchlib.generation.providers import AttemptBudget, CallRecord, ChatRequest
from benchlib.generation.providers.local import LocalProvider, ServerPool, embedded_model_path
from benchlib.generation.providers.ollama import KEEP_ALIVE, OllamaProvider, parameter_size_b
from benchlib.generation.providers.openai import OpenAIProvider
from tests.support.faults import Fault, fault_proxy, http_error
from tests.support.servers import free_port

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


def openai(url: str, model: str = "smollm2", timeout_s: float = 60) -> OpenAIProvider:
    return OpenAIProvider(
        ModelSpec(provider="openai", model=model), f"{url}/v1", timeout_s=timeout_s
    )


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


def test_every_transient_fault_is_retried_and_logged(llm_url: str) -> None:
    """5xx, a reset connection, a stall past the timeout, a 200 that is not JSON and a truncated
    JSON 200: each is one logged attempt, then the real answer."""
    schedule = [
        http_error(503),
        Fault("reset"),
        Fault("stall", seconds=30),
        Fault("not_json"),
        Fault("truncated"),
    ]
    with fault_proxy(llm_url, schedule) as proxy:
        calls: list[CallRecord] = []
        result = openai(proxy.url, timeout_s=3).chat(request(), AttemptBudget(10, 1.0), calls)
    assert result.text and proxy.seen == 6 and proxy.forwarded == 2  # truncated + the answer
    assert [c.status_code for c in calls] == [503, None, None, 200, 200, 200]
    errors = [c.error or "" for c in calls]
    assert "injected 503" in errors[0]
    assert "Error" in errors[1] and "Timeout" in errors[2]
    assert "malformed JSON" in errors[3] and "malformed JSON" in errors[4]
    assert calls[-1].error is None and calls[-1].response["choices"]


def test_retry_after_is_honoured_and_a_slow_answer_is_waited_for(llm_url: str) -> None:
    schedule = [http_error(429, retry_after="2"), Fault("slow", seconds=1)]
    with fault_proxy(llm_url, schedule) as proxy:
        calls: list[CallRecord] = []
        openai(proxy.url).chat(request(), AttemptBudget(5, 3.0), calls)
    assert [c.status_code for c in calls] == [429, 200]
    # Backoff alone would wait at most 0.5·2 + 0.5 s before the second attempt.
    assert (calls[1].started_at - calls[0].started_at).total_seconds() >= 2
    assert proxy.injected == {"status 429": 1, "slow": 1}


def test_a_retry_after_beyond_max_backoff_fails_the_call(llm_url: str) -> None:
    with fault_proxy(llm_url, [http_error(429, retry_after="3600")]) as proxy:
        calls: list[CallRecord] = []
        with pytest.raises(ProviderError, match=r"retry after 3600 s, more than max_backoff_s"):
            openai(proxy.url).chat(request(), AttemptBudget(5, 20.0), calls)
    assert len(calls) == 1 and proxy.forwarded == 0


def test_a_refusal_fails_at_once_with_the_providers_message(llm_url: str) -> None:
    with fault_proxy(llm_url, [http_error(400)]) as proxy:
        calls: list[CallRecord] = []
        with pytest.raises(ProviderError, match="HTTP 400: injected 400"):
            openai(proxy.url).chat(request(), AttemptBudget(5), calls)
    assert len(calls) == 1


def test_the_attempt_budget_caps_retries(llm_url: str) -> None:
    with fault_proxy(llm_url, [http_error(503)] * 5) as proxy:
        calls: list[CallRecord] = []
        with pytest.raises(ProviderError, match="attempt budget exhausted: 2 provider calls"):
            openai(proxy.url).chat(request(), AttemptBudget(2), calls)
    assert len(calls) == 2 and proxy.seen == 2


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
    assert state.keep_alive_seen[-1] == KEEP_ALIVE == "5m"
    provider.unload()
    assert state.loaded is None and state.unloads == unloads + 1


def test_ollama_unknown_model_says_how_to_pull_it(ollama_server) -> None:
    url, _ = ollama_server
    with pytest.raises(BenchlibError, match=r"not found on Ollama.*ollama pull qwen9"):
        OllamaProvider(ModelSpec.parse("ollama:qwen9"), url, timeout_s=5).preflight()


@pytest.mark.parametrize(("label", "size"), [("494.03M", 0.49403), ("7.6B", 7.6), ("", None)])
def test_ollama_parameter_size_labels(label: str, size: float | None) -> None:
    assert parameter_size_b(label) == (pytest.approx(size) if size else None)


@pytest.mark.slow  # starts llama.cpp servers of its own
def test_local_provider_loads_one_model_at_a_time(tmp_path: Path, monkeypatch) -> None:
    copy = tmp_path / "other.gguf"
    shutil.copy(embedded_model_path(), copy)
    pool = ServerPool()
    monkeypatch.setattr("benchlib.generation.providers.local.servers", pool)
    aliases = {"copy": str(copy)}
    first = LocalProvider(ModelSpec.parse("local:smollm2-135m"), aliases, timeout_s=60)
    second = LocalProvider(ModelSpec.parse("local:copy"), aliases, timeout_s=60)
    info = first.preflight()
    assert info.size_b == pytest.approx(0.1345, abs=0.001) and info.digest
    assert pool.loads == 0  # preflight reads the file, it starts no server
    assert first.load() > 0 and first.load() == 0.0  # loaded once, then already running
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


def test_a_model_of_unknown_size_is_refused_unless_allowed() -> None:
    """An OpenAI-compatible server that does not say how big its model is (vLLM, LM Studio):
    the size guard cannot check it, so preflight refuses it unless the user says it fits."""
    from fastapi import FastAPI

    from tests.support.servers import serve_app

    app = FastAPI()

    @app.get("/v1/models")
    def models() -> dict:
        return {"object": "list", "data": [{"id": "mystery", "object": "model"}]}

    with serve_app(app, "/v1/models") as url:
        values = {"models": ["openai:mystery"], "openai_base_url": f"{url}/v1"}
        with pytest.raises(BenchlibError, match="allow_unknown_size") as info:
            preflight_models(build_config(values))
        assert "openai:mystery" in str(info.value) and "max_model_b" in str(info.value)
        infos = preflight_models(build_config({**values, "allow_unknown_size": True}))
        assert infos["openai:mystery"].size_b is None
