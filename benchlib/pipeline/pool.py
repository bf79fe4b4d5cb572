"""The GPU work pool: where pool-mode model blocks run, and how a host joins it.

A host contributes N `gpu` slots (its GPUs) by running `benchlib worker --slots N`: a Prefect
process worker on the pool that runs at most N child flow runs (model blocks) at once. The global
`gpu` limit and the pool's concurrency limit are the sum over hosts
(`python -m deployments.setup --slots TOTAL`), so no host runs more models than it has GPUs and
the pool as a whole never more than the total.

Prefect is imported by the two set-up functions only: `benchlib worker` builds its command from
this module without it.
"""

import os
import shutil
import socket
import sys
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

from benchlib.generation.providers.local import THREADS_ENV
from benchlib.settings import GPU_SLOTS_ENV, WORKER_NAME_ENV

GPU_POOL = "benchlib-gpu"
BLOCK_FLOW = "model-block"
BLOCK_DEPLOYMENT = f"{BLOCK_FLOW}/gpu"
# Workers make their flow runs beat every HEARTBEAT_S (Prefect's minimum); a model block silent
# for CRASH_AFTER_S is marked Crashed by the automation below, and the parent runs it again.
HEARTBEAT_S = 30
CRASH_AFTER_S = 90
CRASH_AUTOMATION = "benchlib: crash model blocks whose host stopped beating"


def worker_command(slots: int, name: str, pool: str = GPU_POOL) -> list[str]:
    """`--limit` is what keeps a host to its slots: the worker never runs more flow runs."""
    prefect = shutil.which("prefect", path=str(Path(sys.executable).parent)) or "prefect"
    return [
        *(prefect, "worker", "start", "--pool", pool, "--type", "process"),
        *("--limit", str(slots), "--name", name),
    ]


def worker_env(slots: int, name: str, base: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The worker's flow runs inherit this: they record `name` on their cells, beat often
    enough for the crash automation to tell a dead host from a slow model, and (CPU hosts)
    split the cores between the `slots` models they may run at once, unless told otherwise."""
    env = dict(
        base,
        **{
            WORKER_NAME_ENV: name,
            GPU_SLOTS_ENV: str(slots),
            "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_S),
        },
    )
    env.setdefault(THREADS_ENV, str(max(1, (os.cpu_count() or 1) // slots)))
    return env


def default_worker_name() -> str:
    return f"gpu-{socket.gethostname()}"


def ensure_gpu_pool(total_slots: int, name: str = GPU_POOL) -> None:
    """Create the pool, or bring its concurrency limit to `total_slots` (a host joined/left)."""
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(name)
        except ObjectNotFound:
            client.create_work_pool(
                WorkPoolCreate(name=name, type="process", concurrency_limit=total_slots)
            )
            return
        client.update_work_pool(name, WorkPoolUpdate(concurrency_limit=total_slots))


def ensure_crash_automation() -> None:
    """Prefect's documented zombie-run detection, limited to model blocks: a flow run of
    `model-block` that stops beating for CRASH_AFTER_S (its host died, its worker was killed) is
    marked Crashed, which frees its pool slot and lets the parent retry the block elsewhere."""
    from prefect import get_client
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    with get_client(sync_client=True) as client:
        if client.read_automations_by_name(CRASH_AUTOMATION):
            return
        client.create_automation(
            AutomationCore(
                name=CRASH_AUTOMATION,
                trigger=EventTrigger(
                    after={"prefect.flow-run.heartbeat"},
                    expect={
                        "prefect.flow-run.heartbeat",
                        "prefect.flow-run.Completed",
                        "prefect.flow-run.Failed",
                        "prefect.flow-run.Cancelled",
                        "prefect.flow-run.Crashed",
                    },
                    match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
                    match_related=ResourceSpecification(
                        {"prefect.resource.role": "flow", "prefect.resource.name": BLOCK_FLOW}
                    ),
                    for_each={"prefect.resource.id"},
                    posture=Posture.Proactive,
                    threshold=1,
                    within=timedelta(seconds=CRASH_AFTER_S),
                ),
                actions=[
                    ChangeFlowRunState(
                        state=StateType.CRASHED,
                        message=f"no heartbeat for {CRASH_AFTER_S} s: its worker or host died",
                    )
                ],
            )
        )
