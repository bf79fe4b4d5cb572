"""Model loads on a 3-model grid whose models are listed out of order: the model-major plan
must load each model once (target: 3), preflight included.

Three `local:` aliases, each its own copy of the embedded GGUF (so nothing can share a
server), 1 prompt × 4 scenarios, the full flow (judge skipped). Counted twice: llama.cpp server
starts in this process (the ground truth) and the loads the run recorded (what `benchlib show`
prints). Prints a table; writes benchmarks/results/model_loads.json.
    .venv/bin/python benchmarks/model_loads.py
"""

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from benchlib.settings import PREFECT_SERVER_ENV

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="benchlib-loads-"))
    os.environ["BENCHLIB_HOME"] = str(work / "home")
    os.environ.update(PREFECT_SERVER_ENV)
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    # Imported once the private home is set: the database and MLflow store live there.
    from benchlib.config import build_config
    from benchlib.generation.providers.local import embedded_model_path, servers
    from benchlib.pipeline.orchestration import ensure_gpu_limit
    from benchlib.store import runs
    from flows.benchmark import benchmark

    aliases = {}
    for name in ("qwen-ish", "llama-ish", "phi-ish"):
        aliases[name] = str(work / f"{name}.gguf")
        shutil.copy(embedded_model_path(), aliases[name])
    listed = ["local:llama-ish", "local:qwen-ish", "local:phi-ish"]
    config = build_config(
        {
            "suite": str(ROOT / "prompts" / "tips"),
            "models": listed,
            "local_models": aliases,
            "prompts": ["v1"],
            "n_scenarios": 4,
            "n_candidates": 1,
            "max_tokens": 16,
            "judge": "skip",
            "no_cache": True,
        }
    )
    ensure_gpu_limit()
    started, start = servers.loads, time.perf_counter()
    run_id = benchmark(**config.model_dump())["run_id"]
    wall_s = time.perf_counter() - start
    recorded, load_s = runs.model_loads(run_id)
    order = [cell.model for cell in sorted(runs.run_cells(run_id), key=lambda c: c.started_at)]
    result = {
        "models": listed,
        "cells": len(order),
        "cell_order": order,
        "server_starts": servers.loads - started,
        "recorded_loads": recorded,
        "load_s": round(load_s, 2),
        "wall_s": round(wall_s, 1),
        "target_loads": 3,
    }
    print(f"{'models':<8}{'cells':>6}{'server starts':>15}{'recorded loads':>16}{'load s':>8}")
    print(
        f"{len(listed):<8}{len(order):>6}{result['server_starts']:>15}"
        f"{recorded:>16}{load_s:>8.2f}   (target 3; wall {wall_s:.1f} s)"
    )
    out = ROOT / "benchmarks" / "results" / "model_loads.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
