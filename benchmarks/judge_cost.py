"""The model judge's cost per item: the embedded model judges a small run's outputs.

1 prompt × 3 scenarios × 1 candidate with the embedded model (judge skipped in the flow), then
`autojudge.judge_run` with the same model (--allow-self-judge: the plumbing's cost is what is
measured, not the judge's quality), once from cold and once answered by the cache. Per item:
wall seconds, prompt and completion tokens from the call log. Prints a table; writes
benchmarks/results/judge_cost.json.
    .venv/bin/python benchmarks/judge_cost.py
"""

import json
import os
import tempfile
import time
from pathlib import Path

from benchlib.settings import PREFECT_SERVER_ENV

ROOT = Path(__file__).resolve().parent.parent
JUDGE = "local:smollm2-135m"


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="benchlib-judge-cost-"))
    os.environ["BENCHLIB_HOME"] = str(work / "home")
    os.environ.update(PREFECT_SERVER_ENV)
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    # Imported once the private home is set: the database and MLflow store live there.
    from sqlmodel import select

    from benchlib.config import build_config
    from benchlib.evaluation import autojudge
    from benchlib.pipeline.orchestration import ensure_gpu_limit
    from benchlib.store.db import session
    from benchlib.store.records import LLMCall
    from flows.benchmark import benchmark

    config = build_config(
        {
            "suite": str(ROOT / "prompts" / "tips"),
            "models": [JUDGE],
            "prompts": ["v1"],
            "n_scenarios": 3,
            "n_candidates": 1,
            "max_tokens": 64,
            "judge": "skip",
            "no_cache": True,
        }
    )
    ensure_gpu_limit()
    run_id = benchmark(**config.model_dump())["run_id"]
    passes = {}
    for name in ("cold", "cached"):
        start = time.perf_counter()
        result = autojudge.judge_run(run_id, JUDGE, allow_self_judge=True)
        passes[name] = (time.perf_counter() - start, result)
    with session() as s:
        calls = list(
            s.exec(select(LLMCall).where(LLMCall.run_id == run_id, LLMCall.step == "judge"))
        )
    items = passes["cold"][1].items
    report = {
        "judge": passes["cold"][1].judge,
        "items": items,
        "malformed": passes["cold"][1].failed,
        "cold_s_per_item": passes["cold"][0] / items,
        "cached_s_per_item": passes["cached"][0] / items,
        "cached_provider_calls": passes["cached"][1].provider_calls,
        "provider_latency_s_per_item": sum(c.latency_s for c in calls) / items,
        "prompt_tokens_per_item": sum(c.prompt_tokens for c in calls) / items,
        "completion_tokens_per_item": sum(c.completion_tokens for c in calls) / items,
    }
    width = max(len(key) for key in report)
    for key, value in report.items():
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        print(f"{key:<{width}}  {shown}")
    out = ROOT / "benchmarks" / "results" / "judge_cost.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written: {out}")


if __name__ == "__main__":
    main()
