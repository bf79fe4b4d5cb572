"""The response cache: keys, what is never cached, and reruns that make no provider call
(counted at a loopback proxy in front of the real model)."""

import time
from uuid import UUID

import pytest
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from benchlib.config import build_config
from benchlib.generation import cache
from benchlib.generation.providers import ChatRequest, ChatResult
from benchlib.generation.providers.local import embedded_model_path, servers
from benchlib.store import runs
from flows.benchmark import benchmark
from tests.conftest import TIPS
from tests.support.faults import fault_proxy, http_error

REQUEST = ChatRequest(
    messages=[{"role": "user", "content": "hi"}], temperature=0.5, seed=1, max_tokens=8
)


def test_every_identity_part_changes_the_key() -> None:
    base = cache.cache_key("openai:m", "d1", REQUEST, 0)
    variants = [
        cache.cache_key("openai:n", "d1", REQUEST, 0),
        cache.cache_key("openai:m", "d2", REQUEST, 0),
        cache.cache_key("openai:m", None, REQUEST, 0),
        cache.cache_key("openai:m", "d1", REQUEST, 1),
        cache.cache_key("openai:m", "d1", REQUEST.model_copy(update={"temperature": 0.6}), 0),
        cache.cache_key("openai:m", "d1", REQUEST.model_copy(update={"seed": 2}), 0),
        cache.cache_key("openai:m", "d1", REQUEST.model_copy(update={"max_tokens": 9}), 0),
        cache.cache_key(
            "openai:m", "d1", REQUEST.model_copy(update={"response_schema": {"type": "object"}}), 0
        ),
        cache.cache_key(
            "openai:m",
            "d1",
            REQUEST.model_copy(update={"messages": [{"role": "user", "content": "hi!"}]}),
            0,
        ),
    ]
    assert len({base, *variants}) == len(variants) + 1
    assert cache.cache_key("openai:m", "d1", REQUEST, 0) == base


def test_truncated_answers_are_not_cached() -> None:
    """Cut before the request's max_tokens (the server's context filled up): not cached; an
    answer that used all of max_tokens is the answer to that key and is."""
    cut = ChatResult(
        text="half", finish_reason="length", completion_tokens=5, latency_s=0.1, raw={}
    )
    assert not cache.store("k-cut", "openai:m", REQUEST, cut)
    assert cache.lookup("k-cut") is None
    at_limit = cut.model_copy(update={"completion_tokens": REQUEST.max_tokens})
    assert cache.store("k-limit", "openai:m", REQUEST, at_limit)
    assert cache.lookup("k-limit") == at_limit
    full = cut.model_copy(update={"finish_reason": "stop"})
    assert cache.store("k-full", "openai:m", REQUEST, full)
    assert cache.lookup("k-full") == full
    assert cache.holds("openai:m") and not cache.holds("openai:never-stored")


@pytest.fixture
def counted(llm_url: str):
    """A proxy that refuses the first request (400) and counts what reaches the model."""
    with fault_proxy(llm_url, [http_error(400)]) as proxy:
        yield proxy, f"{proxy.url}/v1"


def cell_tasks(run_id: str, model: str) -> list[str]:
    """Names of the Prefect task runs of a run's flow run that concern `model`'s cells, read
    once its last task (the MLflow push) is there: the server records task runs from events."""
    flow_run = FlowRunFilter(id=FlowRunFilterId(any_=[UUID(runs.get_run(run_id).flow_run_id)]))
    with get_client(sync_client=True) as client:
        for _ in range(150):
            names = [task.name for task in client.read_task_runs(flow_run_filter=flow_run)]
            if "push to MLflow" in names:
                return sorted(name for name in names if model in name)
            time.sleep(0.1)
    raise AssertionError(f"the task runs of run {run_id} were not recorded: {names}")


def test_an_unchanged_rerun_makes_no_provider_call(prefect_api, small_config, counted) -> None:
    proxy, url = counted
    values = small_config | {
        "openai_base_url": url,
        "prompts": ["v2-mentor"],
        "n_candidates": 2,
        "max_tokens": 256,
        "no_cache": False,
        "experiment": "cache-test",
    }
    first = benchmark(**build_config(values).model_dump())["run_id"]
    assert [c.status for c in runs.run_cells(first)] == ["failed", "completed"]
    calls_after_first = proxy.forwarded
    assert calls_after_first == 2

    second = benchmark(**build_config(values).model_dump())["run_id"]
    cells = runs.run_cells(second)
    # The failed cell was not cached: it is generated now; the other one comes from the cache.
    assert [c.status for c in cells] == ["completed", "completed"]
    assert proxy.forwarded == calls_after_first + 2
    by_cell = {
        c.id: [x.cached for x in runs.run_candidates(second) if x.cell_id == c.id] for c in cells
    }
    assert by_cell[cells[0].id] == [False, False] and by_cell[cells[1].id] == [True, True]
    assert runs.get_run(second).leaderboard["rows"][0]["n_outputs"] == 4
    # The cached cell is recorded by the block's one cache task; the other one is generated.
    model = values["models"][0]
    generated = f"{model} | v2-mentor | {cells[0].scenario_id}"
    assert cell_tasks(second, model) == sorted([generated, f"from the cache | {model}"])

    third = benchmark(**build_config(values).model_dump())["run_id"]
    assert proxy.forwarded == calls_after_first + 2  # zero provider calls
    assert all(c.cached for c in runs.run_candidates(third))
    assert runs.get_run(third).status == "completed"
    assert cell_tasks(third, model) == [f"from the cache | {model}"]

    refreshed = benchmark(**build_config(values | {"refresh": True}).model_dump())["run_id"]
    assert proxy.forwarded == calls_after_first + 6
    assert f"from the cache | {model}" not in cell_tasks(refreshed, model)
    benchmark(**build_config(values | {"no_cache": True}).model_dump())
    assert proxy.forwarded == calls_after_first + 10


def test_a_block_the_cache_answers_whole_loads_no_model(prefect_api: str) -> None:
    """The local model is loaded at a block's first answer not in the cache: the first run
    starts its llama.cpp server once; the rerun, answered from the cache, starts none and
    records no load."""
    path = str(embedded_model_path())
    values = {
        "suite": str(TIPS),
        "models": ["local:smol-cached"],
        "local_models": {"smol-cached": path},
        "prompts": ["v1"],
        "n_scenarios": 2,
        "n_candidates": 1,
        "max_tokens": 16,
        "temperature": 0.0,
        "seed": 777,  # no other test's cached answers
        "judge": "skip",
        "no_cache": False,
        "experiment": "cache-load-test",
    }
    started = servers.loads
    first = benchmark(**build_config(values).model_dump())["run_id"]
    assert servers.loads - started == 1
    assert runs.model_loads(first)[0] == 1

    second = benchmark(**build_config(values).model_dump())["run_id"]
    assert servers.loads - started == 1
    assert runs.model_loads(second) == (0, 0.0)
    assert all(c.cached for c in runs.run_candidates(second))
