"""One model's block of cells, under one `gpu` slot (a slot is a loaded model).

`generate_block` is the only place a block is generated: the parent flow calls it for each block
with `execution: local`; with `execution: pool` the parent starts one `model-block` child flow
run per block on the GPU work pool (benchlib.pipeline.fanout) and the child calls it on its
worker's host.
"""

from typing import Any

from prefect import flow, unmapped
from prefect.task_runners import ThreadPoolTaskRunner

from benchlib.pipeline.orchestration import current_flow_run_id, gpu_slot
from benchlib.pipeline.pool import BLOCK_FLOW
from benchlib.spec.grid import CellPlan
from benchlib.store.runs import RunContext, pending_cells
from tasks.benchmark import record_cached, release_model, run_cell


def generate_block(context: RunContext, block: list[CellPlan]) -> None:
    """Generate the block's cells not yet recorded, then unload the model.

    Cells an earlier attempt finished are skipped: a block whose worker died is run again
    elsewhere without redoing them. Cells the response cache answers whole are recorded first,
    without the slot: a block the cache answers whole never takes it. The slot is taken once
    for the whole block, not per cell: Prefect makes each re-acquisition wait ~2 s. Inside it,
    a task runner of `max_inflight` threads sends that many of the block's cells to the loaded
    model at once (servers batch them), taking them in model-major order; 1 is one at a time.
    """
    todo = pending_cells(block)
    if context.config.cache_mode == "use" and todo:
        todo = record_cached(context, todo)
    if not todo:
        return
    with gpu_slot(current_flow_run_id()):
        try:
            runner = ThreadPoolTaskRunner[Any](max_workers=context.config.max_inflight)
            with runner as inflight:
                inflight.map(run_cell, {"context": unmapped(context), "cell": todo}).result()
        finally:
            release_model(context, todo[0].model)


@flow(
    name=BLOCK_FLOW,
    persist_result=True,
    log_prints=True,
)
def model_block(context: RunContext, cells: list[CellPlan]) -> int:
    """Generate one model's cells of a benchmark run on this worker's host; returns how many."""
    generate_block(context, cells)
    return len(cells)
