"""`execution: pool`: the parent flow hands each model's block of cells to the GPU work pool.

Each block becomes a child flow run of the `model-block/gpu` deployment, picked up by whichever
worker has a free slot, so a model is loaded once, on one host, for all its cells. The parent
waits for every child; a child that fails or crashes (its worker died: see
benchlib.pipeline.pool.ensure_crash_automation) is started again, and the new run skips the cells
the dead one finished (they are in the database).
"""

import time
from uuid import UUID

from prefect import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound
from sqlmodel import col, select

from benchlib.errors import BenchlibError
from benchlib.pipeline import events
from benchlib.pipeline.pool import BLOCK_DEPLOYMENT, GPU_POOL
from benchlib.spec.grid import CellPlan
from benchlib.store.db import session
from benchlib.store.records import Cell, CellStatus
from benchlib.store.runs import RunContext

BLOCK_RETRIES = 3


def block_tag(run_id: str) -> str:
    """Tags a run's model blocks (the parent has orchestration.run_tag)."""
    return f"benchlib-block:{run_id}"


def _check_deployment(deployment: str) -> None:
    with get_client(sync_client=True) as client:
        try:
            client.read_deployment_by_name(deployment)
        except ObjectNotFound:
            raise BenchlibError(
                f"execution: pool needs the deployment {deployment!r} on the Prefect server at "
                f"{client.api_url}: run `python -m deployments.setup --slots TOTAL` and `prefect "
                f"deploy --name gpu` (or `benchlib stack up`), and start workers on the "
                f"{GPU_POOL!r} pool with `benchlib worker --slots N`"
            ) from None


def _start(context: RunContext, block: list[CellPlan], attempt: int, deployment: str) -> FlowRun:
    """The idempotency key makes a replayed parent find its children instead of doubling them."""
    model = block[0].model
    flow_run = run_deployment(
        deployment,
        parameters={"context": context, "cells": block},
        flow_run_name=f"{context.run_id} {model} #{attempt}",
        idempotency_key=f"{context.run_id}:{model}:{attempt}",
        tags=["benchlib", block_tag(context.run_id)],
        timeout=0,
    )
    assert isinstance(flow_run, FlowRun)  # called from sync code: no coroutine
    return flow_run


def run_blocks(
    context: RunContext,
    blocks: list[list[CellPlan]],
    deployment: str = BLOCK_DEPLOYMENT,
    retries: int = BLOCK_RETRIES,
    poll_s: float = 2.0,
) -> dict[str, list[str]]:
    """Run every block as a child flow run and wait; returns each model's child flow run ids,
    the last one the run that completed. Raises when a block still fails after `retries`."""
    _check_deployment(deployment)
    attempts: dict[str, list[str]] = {}
    waiting: dict[UUID, list[CellPlan]] = {}
    for block in blocks:
        child = _start(context, block, 1, deployment)
        attempts[block[0].model] = [str(child.id)]
        waiting[child.id] = block
    failures = []
    announced: set[str] = set()
    while waiting:
        time.sleep(poll_s)
        _announce_recorded(context.run_id, announced)
        with get_client(sync_client=True) as client:
            states = {run_id: client.read_flow_run(run_id).state for run_id in waiting}
        for run_id, state in states.items():
            if state is None or not state.is_final():
                continue
            block = waiting.pop(run_id)
            model = block[0].model
            if state.is_completed():
                continue
            tried = len(attempts[model])
            if state.is_cancelled() or tried > retries:
                failures.append(f"{model}: {state.name} after {tried} run(s): {state.message}")
                continue
            child = _start(context, block, tried + 1, deployment)
            attempts[model].append(str(child.id))
            waiting[child.id] = block
    _announce_recorded(context.run_id, announced)
    if failures:
        raise BenchlibError("model blocks did not complete:\n  " + "\n  ".join(failures))
    return attempts


def _announce_recorded(run_id: str, announced: set[str]) -> None:
    """Emit `cell_done` for the cells recorded since the last poll. The children generate in
    their workers' processes, whose events never reach this one: without this the CLI's
    progress bar stood still for a whole pool run."""
    with session() as s:
        # Ids first: a NOT IN of every cell announced would grow past SQLite's limit on
        # bound parameters in a large run; the cells new since the last poll are few.
        done = select(Cell.id).where(Cell.run_id == run_id, Cell.status != CellStatus.pending)
        new = set(s.exec(done)) - announced
        if not new:
            return
        recorded = list(s.exec(select(Cell).where(col(Cell.id).in_(new)).order_by(col(Cell.index))))
    for cell in recorded:
        announced.add(cell.id)
        events.emit("cell_done", cell=cell, status=cell.status, error=cell.error)
