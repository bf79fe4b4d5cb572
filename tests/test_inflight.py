"""`max_inflight`: several cells of one model's block at the model's server at once, all within
the block's one `gpu` slot; each cell still one task, recorded once."""

import shutil
from pathlib import Path

import httpx
import pytest

from benchlib.generation.modelspec import ModelSpec
from benchlib.generation.providers.local import (
    SLOT_CTX,
    LocalProvider,
    ServerPool,
    embedded_model_path,
)
from benchlib.store import runs
from tests.conftest import TIPS
from tests.support.faults import Fault, fault_proxy
from tests.test_flow import run_flow


@pytest.mark.parametrize("max_inflight", [1, 2])
def test_the_server_sees_max_inflight_requests_at_once_and_each_cell_once(
    prefect_api: str, small_config: dict, llm_url: str, max_inflight: int
) -> None:
    """The proxy holds the first request 2 s: a second one arrives meanwhile only when the
    block has room for it (the same schedule shows 1 at a time with max_inflight 1)."""
    with fault_proxy(llm_url, [Fault("slow", seconds=2)]) as proxy:
        run_id = run_flow(
            small_config
            | {
                "openai_base_url": f"{proxy.url}/v1",
                "prompts": ["v1"],
                "n_scenarios": 4,
                "n_candidates": 1,
                "max_tokens": 32,
                "max_inflight": max_inflight,
            }
        )
    assert proxy.max_in_flight == max_inflight
    assert proxy.seen == proxy.forwarded == 4 and proxy.regenerated() == 0
    cells = runs.run_cells(run_id)
    assert [c.status for c in cells] == ["completed"] * 4
    candidates = runs.run_candidates(run_id)
    assert sorted(c.cell_id for c in candidates) == sorted(c.id for c in cells)


def test_local_blocks_overlap_their_cells_and_stay_model_major(prefect_api: str) -> None:
    """Two local models, 2 in flight: each block's cells overlap (the second waits for the
    server the first is starting, then shares it), the second model starts only after the
    first is done, and each model is loaded once."""
    path = str(embedded_model_path())
    run_id = run_flow(
        {
            "suite": str(TIPS),
            "models": ["local:smol-b", "local:smol-a"],
            "local_models": {"smol-a": path, "smol-b": path},
            "no_cache": True,  # it counts loads: every cell must generate
            "prompts": ["v1"],
            "n_scenarios": 2,
            "n_candidates": 1,
            "max_tokens": 16,
            "judge": "skip",
            "max_inflight": 2,
        }
    )
    cells = runs.run_cells(run_id)
    first, second = cells[:2], cells[2:]
    assert [c.model for c in cells] == ["local:smol-b"] * 2 + ["local:smol-a"] * 2
    for block in (first, second):
        assert max(c.started_at for c in block) < min(c.finished_at for c in block)
    assert max(c.finished_at for c in first) <= min(c.started_at for c in second)
    assert runs.model_loads(run_id)[0] == 2
    assert sorted(c.model_load_s > 0 for c in cells) == [False, False, True, True]


@pytest.mark.slow  # starts llama.cpp servers of its own
def test_the_local_server_gets_a_slot_per_request_in_flight(tmp_path: Path, monkeypatch) -> None:
    """llama.cpp's own view (/props, /slots): 2 slots of the usual context each; asking for 1
    slot afterwards starts the model again rather than reusing the 2-slot server."""
    copy = tmp_path / "model.gguf"
    shutil.copy(embedded_model_path(), copy)
    pool = ServerPool()
    monkeypatch.setattr("benchlib.generation.providers.local.servers", pool)
    spec = ModelSpec.parse("local:model")
    aliases = {"model": str(copy)}
    try:
        two = LocalProvider(spec, aliases, timeout_s=60, slots=2)
        two.load()
        server = two.base_url.removesuffix("/v1")
        assert httpx.get(f"{server}/props").json()["total_slots"] == 2
        assert [slot["n_ctx"] for slot in httpx.get(f"{server}/slots").json()] == [SLOT_CTX] * 2
        assert two.load() == 0.0 and pool.loads == 1
        one = LocalProvider(spec, aliases, timeout_s=60, slots=1)
        one.load()
        assert pool.loads == 2
        assert httpx.get(f"{one.base_url.removesuffix('/v1')}/props").json()["total_slots"] == 1
    finally:
        pool.stop_all()
