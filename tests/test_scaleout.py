"""`execution: pool` for real, on one machine: a Prefect server, the GPU pool with 2 slots, two
process workers of 1 slot each, and a grid of 4 models (aliases of the embedded model, each
loaded by the worker that runs its block)."""

import contextvars
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
from prefect.settings import PREFECT_API_URL, temporary_settings
from sqlmodel import select

from benchlib.config import build_config
from benchlib.errors import BenchlibError
from benchlib.pipeline import events
from benchlib.pipeline.fanout import block_tag, run_blocks
from benchlib.pipeline.orchestration import GPU_LIMIT
from benchlib.pipeline.pool import GPU_POOL
from benchlib.store import runs
from benchlib.store.db import session
from benchlib.store.records import Cell, CellStatus, LLMCall, RunStatus
from flows.benchmark import benchmark
from tests.support.pool import (
    MODELS,
    alias_grid,
    max_overlap,
    prefect_server,
    prepare_pool,
    workers,
)


@pytest.fixture(scope="module")
def pool_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("pool")
    with prefect_server(folder) as api, temporary_settings({PREFECT_API_URL: api}):
        prepare_pool(api, total_slots=2)
        yield api


def cells_of(run_id: str) -> list[Cell]:
    return runs.run_cells(run_id)


def calls_per_cell(run_id: str) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    with session() as s:
        for call in s.exec(select(LLMCall).where(LLMCall.run_id == run_id)):
            counts[call.cell_id] += 1
    return counts


def workers_by_model(cells: list[Cell]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for cell in cells:
        found[cell.model].add(cell.worker)
    return found


def test_the_pool_has_the_summed_slots(pool_api: str) -> None:
    with get_client(sync_client=True) as client:
        assert client.read_global_concurrency_limit_by_name(GPU_LIMIT).limit == 2
        assert client.read_work_pool(GPU_POOL).concurrency_limit == 2


def test_models_spread_over_workers_within_the_slots(pool_api: str, tmp_path: Path) -> None:
    announced: list[str] = []
    unsubscribe = events.subscribe(
        lambda kind, data: announced.append(data["cell"].id) if kind == "cell_done" else None
    )
    try:
        with workers(pool_api, ["w1", "w2"], tmp_path):
            result = benchmark(**alias_grid(n_scenarios=2))
    finally:
        unsubscribe()
    run = runs.get_run(result["run_id"])
    assert run.status == RunStatus.completed
    cells = cells_of(run.id)
    assert len(cells) == 4 * 2
    # Generated in the workers' processes, announced here (the CLI's progress bar), once each.
    assert sorted(announced) == sorted(cell.id for cell in cells)
    assert all(cell.status == CellStatus.completed for cell in cells)
    # A model's cells all ran in one flow-run process of one worker (its model loaded once).
    by_model = workers_by_model(cells)
    assert all(len(where) == 1 for where in by_model.values()), by_model
    names = {next(iter(where)).split("@")[0] for where in by_model.values()}
    assert names == {"w1", "w2"}
    # Two slots in all: never more than two cells at once, across both workers.
    assert max_overlap([(c.started_at, c.finished_at) for c in cells]) <= 2
    assert calls_per_cell(run.id) == {cell.id: 1 for cell in cells}
    # One leaderboard over the whole grid, scored once in the parent.
    assert sorted(row.model for row in result["leaderboard"].rows) == [f"local:{m}" for m in MODELS]


def test_a_killed_worker_is_survived(pool_api: str, tmp_path: Path) -> None:
    """SIGKILL one worker and its processes while its model's block is half done: Prefect's
    crash automation marks the child Crashed, the parent runs the block again on the other
    worker, which generates only the cells the dead one had not finished."""
    outcome: dict = {}
    with workers(pool_api, ["w1", "w2"], tmp_path) as started:
        # The thread runs in this context: Prefect's settings (the API URL) are context-local.
        parent = threading.Thread(
            target=contextvars.copy_context().run,
            args=(lambda: outcome.update(benchmark(**alias_grid(n_scenarios=3))),),
        )
        parent.start()
        victim, model = None, None
        deadline = time.monotonic() + 600
        while victim is None and time.monotonic() < deadline and parent.is_alive():
            for run in runs.list_runs(limit=1):
                for name, where in workers_by_model(cells_of(run.id)).items():
                    done = {w for w in where if w}
                    if done and None in where:  # the block has finished and pending cells
                        model, victim = name, next(iter(done)).split("@")[0]
                        break
            time.sleep(0.2)
        assert victim, "no block was caught half done"
        killed = next(w for w in started if w.name == victim)
        killed.kill_host()
        parent.join(timeout=900)
    assert not parent.is_alive()
    run = runs.get_run(outcome["run_id"])
    assert run.status == RunStatus.completed
    cells = cells_of(run.id)
    assert all(cell.status == CellStatus.completed for cell in cells)
    assert calls_per_cell(run.id) == {cell.id: 1 for cell in cells}  # each cell generated once
    by_model = workers_by_model(cells)
    survivor = ({"w1", "w2"} - {victim}).pop()
    assert {w.split("@")[0] for w in by_model[model]} == {victim, survivor}
    assert all(len(where) == 1 for name, where in by_model.items() if name != model)
    with get_client(sync_client=True) as client:
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[block_tag(run.id)]))
        )
    states = sorted(child.state.name for child in children)
    assert states == ["Completed"] * 4 + ["Crashed"]
    assert len(run.leaderboard["rows"]) == 4


def test_without_the_deployment_pool_execution_says_what_to_set_up(pool_api: str) -> None:
    plan = runs.plan_run(build_config(alias_grid(n_scenarios=1)))
    with pytest.raises(BenchlibError, match="needs the deployment 'model-block/none'"):
        run_blocks(plan.context, [plan.cells], deployment="model-block/none")
