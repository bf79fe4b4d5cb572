"""Prefect set-up benchlib relies on: the global concurrency limit `gpu`.

A model block takes a slot on a lease; a missing limit is an error rather than a silent "no
limit" (Prefect never creates one on its own). Our set-up creates it; an existing limit is
left as the operator configured it.
"""

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from uuid import UUID

import httpx
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
from prefect.client.schemas.objects import FlowRun
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from sqlmodel import col, delete

from benchlib.config import BenchmarkConfig
from benchlib.errors import BenchlibError, Conflict, Unavailable
from benchlib.settings import GPU_SLOTS_ENV
from benchlib.store.db import session
from benchlib.store.records import GpuLease, Run

GPU_LIMIT = "gpu"
# A process that dies holding the slot stops renewing its lease; a full Prefect server frees the
# slot this long after (its repossessor; ephemeral and test servers run none). Renewed every 3/4
# of it while alive.
GPU_LEASE_S = 90
logger = logging.getLogger(__name__)


def current_flow_run_id() -> str:
    """The id of the flow run this code runs in: the flows and tasks below need one."""
    from prefect.runtime import flow_run

    found = flow_run.get_id()
    if found is None:
        raise RuntimeError("not inside a Prefect flow run")
    return found


def gpu_slots() -> int:
    """Slots of this host (its GPUs): models loaded at once."""
    return int(os.environ.get(GPU_SLOTS_ENV, "1"))


def ensure_gpu_limit(slots: int | None = None) -> int:
    """Create the `gpu` limit if the Prefect server lacks it; returns its number of slots."""
    with get_client(sync_client=True) as client:
        try:
            return client.read_global_concurrency_limit_by_name(GPU_LIMIT).limit
        except ObjectNotFound:
            wanted = slots or gpu_slots()
            client.upsert_global_concurrency_limit_by_name(GPU_LIMIT, wanted)
            return wanted


@contextmanager
def gpu_slot(flow_run_id: str) -> Iterator[None]:
    """One `gpu` slot, on a lease whose id is recorded while it is held (records.GpuLease): if
    this process dies, `benchlib resume` frees the slot without waiting for the lease to expire
    (which an ephemeral Prefect server never notices). Taken with the Prefect client's lease
    calls: Prefect's `concurrency()` keeps the lease id to itself."""
    lease_id = _take_gpu_lease()
    renewed = _renew_while_held(lease_id)
    try:
        with session() as s:
            s.merge(GpuLease(flow_run_id=flow_run_id, lease_id=str(lease_id)))
        try:
            yield
        finally:
            with session() as s:
                s.exec(delete(GpuLease).where(col(GpuLease.flow_run_id) == flow_run_id))
    finally:
        renewed.set()
        with get_client(sync_client=True) as client:
            client.release_concurrency_slots_with_lease(lease_id)


def _take_gpu_lease() -> UUID:
    """Wait for a `gpu` slot (the server answers 423 with Retry-After while none is free). A
    missing limit is an error, not "no limit": Prefect never creates one on its own."""
    with get_client(sync_client=True) as client:
        while True:
            try:
                response = client.increment_concurrency_slots_with_lease(
                    names=[GPU_LIMIT], slots=1, mode="concurrency", lease_duration=GPU_LEASE_S
                )
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code != httpx.codes.LOCKED:
                    raise
                time.sleep(float(exc.response.headers.get("Retry-After", 1)))
                continue
            granted = response.json()
            if not granted["limits"]:
                raise BenchlibError(
                    f"the Prefect server has no {GPU_LIMIT!r} concurrency limit: "
                    "`python -m deployments.setup` creates it (`benchlib run` does too)"
                )
            return UUID(granted["lease_id"])


def _renew_while_held(lease_id: UUID) -> threading.Event:
    """Renew the lease every 3/4 of its duration until the returned event is set."""
    released = threading.Event()

    def renew() -> None:
        while not released.wait(GPU_LEASE_S * 3 / 4):
            try:
                with get_client(sync_client=True) as client:
                    client.renew_concurrency_lease(lease_id, GPU_LEASE_S)
            except httpx.HTTPError as exc:
                logger.warning("could not renew the gpu lease %s (will retry): %s", lease_id, exc)

    threading.Thread(target=renew, name="gpu-lease", daemon=True).start()
    return released


def release_dead_lease(flow_run_id: str) -> None:
    """Free the slot a dead process held (a no-op if its lease already expired)."""
    with session() as s:
        lease = s.get(GpuLease, flow_run_id)
        if lease is None:
            return
        with get_client(sync_client=True) as client:
            client.release_concurrency_slots_with_lease(UUID(lease.lease_id))
        s.delete(lease)


@contextmanager
def in_process_flow() -> Iterator[None]:
    """Prefect settings for a flow the CLI runs in its own process. No flow run heartbeats:
    nothing watches them for such a run (`benchlib resume` checks the recorded pid instead), and
    every flow and subflow waited up to a second at its end for the heartbeat thread to stop.
    Deployment runs keep them (the pool's crash automation relies on them)."""
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


def set_gpu_limit(slots: int) -> int:
    """Set the `gpu` limit to `slots` whether it exists or not: the operator's explicit total
    (a host joined or left the pool)."""
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(GPU_LIMIT, slots)
    return slots


def resume_flow_run(flow_run_id: str, run_input: dict) -> None:
    """Resume a flow run waiting for input; a rejection keeps it suspended and says why."""
    from prefect.flow_runs import resume_flow_run as prefect_resume

    with get_client(sync_client=True) as client:
        state = client.read_flow_run(UUID(flow_run_id)).state
    if state is None or not state.is_paused():
        name = state.name if state else "unknown"
        raise Conflict(f"flow run {flow_run_id} is not waiting for judges (state: {name})")
    try:
        prefect_resume(UUID(flow_run_id), run_input=run_input)
    except RuntimeError as exc:
        raise BenchlibError(
            f"Prefect rejected the resume of flow run {flow_run_id}: {exc}; it stays suspended"
        ) from None


def resume_run(run: Run, approve: bool) -> str:
    """Resume a benchmark run's suspended flow run; returns the flow run id."""
    if not run.flow_run_id:
        raise Conflict(f"run {run.id} has no Prefect flow run to resume")
    resume_flow_run(run.flow_run_id, {"approve": approve})
    return run.flow_run_id


def run_tag(run_id: str) -> str:
    """Tags the flow run with the benchmark run id: it can be found before its flow has
    recorded the run (pending) and after it failed without recording it."""
    return f"benchlib-run:{run_id}"


def start_deployment_run(deployment: str, config: BenchmarkConfig) -> str:
    """Create a flow run of `deployment` with the keys the caller set (the deployment's own
    defaults, e.g. its MLflow server, stay for the rest); returns the flow run id."""
    parameters = config.model_dump(mode="json", exclude_unset=True)
    try:
        with get_client(sync_client=True) as client:
            found = client.read_deployment_by_name(deployment)
            flow_run = client.create_flow_run_from_deployment(
                found.id, parameters=parameters, tags=[run_tag(config.run_id)]
            )
    except ObjectNotFound:
        raise Unavailable(
            f"deployment {deployment!r} is not on the Prefect server: start the stack "
            "(`benchlib stack up`) or deploy it (`prefect deploy --all`)"
        ) from None
    except httpx.TransportError as exc:
        raise Unavailable(f"the Prefect server cannot be reached: {type(exc).__name__}") from None
    return str(flow_run.id)


def find_flow_run(run_id: str, flow_run_id: str | None = None) -> FlowRun | None:
    """The benchmark run's flow run (by id, else by tag), or None if Prefect has none or is
    unreachable: a run's record is still worth answering with."""
    try:
        with get_client(sync_client=True) as client:
            if flow_run_id:
                return client.read_flow_run(UUID(flow_run_id))
            found = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[run_tag(run_id)])),
                limit=1,
            )
    except (ObjectNotFound, httpx.TransportError):
        return None
    return found[0] if found else None
