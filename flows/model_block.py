"""One model's block of cells, under one `gpu` slot (a slot is a loaded model).

`generate_block` is the only place a block is generated: the parent flow calls it for each block
with `execution: local`; with `execution: pool` the parent starts one `model-block` child flow
run per block on the GPU work pool (benchlib.fanout) and the child calls it on its worker's host.
"""

from prefect import flow, unmapped
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from benchlib.grid import CellPlan
from benchlib.orchestration import gpu_slot
from benchlib.pool import BLOCK_FLOW
from benchlib.runs import RunContext, pending_cells
from tasks.benchmark import release_model, run_cell


def generate_block(context: RunContext, block: list[CellPlan]) -> None:
    """Generate the block's cells not yet recorded, then unload the model.

    Cells an earlier attempt finished are skipped: a block whose worker died is run again
    elsewhere without redoing them. The slot is taken once for the whole block, not per cell:
    Prefect makes each re-acquisition wait ~2 s.
    """
    todo = pending_cells(block)
    if not todo:
        return
    with gpu_slot(flow_run.get_id()):
        try:
            run_cell.map(unmapped(context), todo).result()
        finally:
            release_model(context, todo[0].model)


@flow(
    name=BLOCK_FLOW,
    persist_result=True,
    # One cell at a time: the block's model is loaded once and serves one request at a time.
    task_runner=ThreadPoolTaskRunner(max_workers=1),
    log_prints=True,
)
def model_block(context: RunContext, cells: list[CellPlan]) -> int:
    """Generate one model's cells of a benchmark run on this worker's host; returns how many."""
    generate_block(context, cells)
    return len(cells)
