"""Prepare a Prefect server for benchlib: the `gpu` concurrency limit, the process work pool for
benchmark runs, and the GPU work pool (with its crash detection) for `execution: pool`.

    python -m deployments.setup [--slots TOTAL]

TOTAL is the sum of the `--slots` of every `benchlib worker` (each host's GPUs). Given, it sets
the `gpu` limit and the GPU pool's concurrency limit to it (run it again when a host joins or
leaves); omitted, an existing `gpu` limit is kept (1 slot if there is none). Idempotent.
"""

import argparse
import contextlib

from prefect import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import ObjectAlreadyExists

from benchlib.pipeline.orchestration import ensure_gpu_limit, set_gpu_limit
from benchlib.pipeline.pool import GPU_POOL, ensure_crash_automation, ensure_gpu_pool

WORK_POOL = "benchlib"


def ensure_work_pool(name: str = WORK_POOL) -> None:
    with get_client(sync_client=True) as client, contextlib.suppress(ObjectAlreadyExists):
        client.create_work_pool(WorkPoolCreate(name=name, type="process"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--slots", type=int, default=None, help="GPU slots over all hosts (default: keep, or 1)"
    )
    args = parser.parse_args()
    if args.slots is not None and args.slots < 1:
        parser.error(f"--slots: expected a positive number of GPU slots, got {args.slots}")
    slots = set_gpu_limit(args.slots) if args.slots else ensure_gpu_limit()
    ensure_work_pool()
    ensure_gpu_pool(slots)
    ensure_crash_automation()
    print(f"gpu limit: {slots} slot(s); work pools: {WORK_POOL}, {GPU_POOL} (limit {slots})")


if __name__ == "__main__":
    main()
