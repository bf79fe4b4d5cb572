"""Prepare a Prefect server for benchlib: the `gpu` concurrency limit and the process work pool.

    python -m deployments.setup [--slots N]

Idempotent: an existing limit or pool is left as it is.
"""

import argparse
import contextlib

from prefect import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import ObjectAlreadyExists

from benchlib.orchestration import ensure_gpu_limit

WORK_POOL = "benchlib"


def ensure_work_pool(name: str = WORK_POOL) -> None:
    with get_client(sync_client=True) as client, contextlib.suppress(ObjectAlreadyExists):
        client.create_work_pool(WorkPoolCreate(name=name, type="process"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slots", type=int, default=None, help="GPU slots (default: 1)")
    args = parser.parse_args()
    slots = ensure_gpu_limit(args.slots)
    ensure_work_pool()
    print(f"gpu limit: {slots} slot(s); work pool: {WORK_POOL}")


if __name__ == "__main__":
    main()
