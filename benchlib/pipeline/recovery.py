"""Running a benchmark again after the process running it died (SIGKILL, OOM, a lost machine).

Prefect only knows a flow run is `Running`; whether anything still runs it is the question. The
flow writes `host:pid` of its process into the flow run's `infrastructure_pid` (a process worker
writes the bare pid there too) so `benchlib resume` can look. Re-running the same flow run replays
it from the top: cells the database has recorded are skipped and answers already received
come from the response cache, so nothing is generated or recorded twice. The
`gpu` slot the dead process held is released through its lease (see orchestration.gpu_slot).
"""

import os
import socket
from pathlib import Path
from uuid import UUID

from prefect import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_API_URL
from prefect.states import Scheduled

from benchlib.errors import BenchlibError
from benchlib.pipeline.orchestration import release_dead_lease
from benchlib.settings import check_free_space
from benchlib.store import runs
from benchlib.store.records import FINISHED


def record_process(flow_run_id: str) -> None:
    """Say which process runs this flow run (called from the flow body, so a re-run updates it)."""
    with get_client(sync_client=True) as client:
        client.update_flow_run(
            UUID(flow_run_id), infrastructure_pid=f"{socket.gethostname()}:{os.getpid()}"
        )


def process_alive(infrastructure_pid: str | None) -> bool | None:
    """Whether the process in `infrastructure_pid` still runs; None when this host cannot tell
    (another machine's process, or nothing recorded)."""
    if not infrastructure_pid:
        return None
    host, _, pid = infrastructure_pid.rpartition(":")
    if (host and host != socket.gethostname()) or not pid.isdigit():
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    # A killed child its parent has not reaped yet is a zombie: dead, though its pid exists.
    return stat.rpartition(")")[2].split()[0] != "Z"


def reschedule(run_id: str, force: bool = False) -> FlowRun:
    """Put the Prefect flow run of benchmark run `run_id` back to Scheduled, if its process is
    dead (or `force`); returns the flow run, for whoever runs it next (a worker picks up a
    deployment's run; a local run is run again by the caller)."""
    check_free_space()
    run = runs.get_run(run_id)
    if run.status in FINISHED:
        raise BenchlibError(f"run {run.id} is {run.status}: nothing to resume")
    if not run.flow_run_id:
        raise BenchlibError(f"run {run.id} has no Prefect flow run to resume")
    with get_client(sync_client=True) as client:
        try:
            flow_run = client.read_flow_run(UUID(run.flow_run_id))
        except ObjectNotFound:
            raise BenchlibError(
                f"run {run.id}: the Prefect server at {PREFECT_API_URL.value() or '(ephemeral)'} "
                f"does not know flow run {run.flow_run_id}; set PREFECT_API_URL to the server "
                "the run used"
            ) from None
        state = flow_run.state
        if state is not None and state.is_paused():
            raise BenchlibError(
                f"run {run.id} waits for judges, it is not dead: `benchlib judge resume {run.id}`"
            )
        if state is not None and (state.is_running() or state.is_pending()) and not force:
            alive = process_alive(flow_run.infrastructure_pid)
            if alive is not False:
                how = "is alive" if alive else "cannot be checked from this host"
                raise BenchlibError(
                    f"run {run.id}: flow run {flow_run.id} is {state.name} and its process "
                    f"({flow_run.infrastructure_pid or 'not recorded'}) {how}; "
                    "--force runs it again anyway"
                )
        release_dead_lease(str(flow_run.id))
        client.set_flow_run_state(flow_run.id, Scheduled(), force=True)
        return client.read_flow_run(flow_run.id)
