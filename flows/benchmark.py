"""The benchmark pipeline: plan → collect → (model judge) → (judge) → scoring → compare.

The parameters are BenchmarkConfig's keys with its defaults (written out so Prefect's UI and
`prefect deploy` can read them from the source; tests/test_config.py keeps them in sync).
"""

from typing import Literal

from prefect import flow, get_run_logger
from prefect.runtime import deployment

from benchlib.config import build_config
from benchlib.evaluation.judging import WAITS_FOR_PEOPLE
from benchlib.pipeline import prefect_views
from benchlib.pipeline.orchestration import current_flow_run_id
from benchlib.pipeline.recovery import record_process
from benchlib.spec.grid import model_blocks
from benchlib.store import runs
from benchlib.store.records import CellStatus, RunStatus
from flows.compare import compare
from flows.judge import await_judgements
from flows.model_block import generate_block
from flows.scoring import scoring
from tasks.benchmark import (
    fan_out,
    judge_with_model,
    label_flow_run,
    mark_run,
    plan,
    publish_run_summary,
    push_to_mlflow,
)


@flow(
    name="benchmark",
    persist_result=True,
    log_prints=True,
)
def benchmark(
    suite: str = "prompts/tips",
    # `| str`: "a,b" is accepted as a list (admin panels send it so); BenchmarkConfig splits it.
    models: list[str] | str = ["local:smollm2-135m"],  # noqa: B006 - literal, for the UI form
    prompts: list[str] | str = [],  # noqa: B006
    n_candidates: int = 3,
    n_scenarios: int = 0,
    temperature: float = 0.7,
    seed: int = 42,
    max_tokens: int = 128,
    experiment: str = "",
    max_model_b: float = 4.0,
    allow_unknown_size: bool = False,
    max_attempts_per_cell: int = 0,
    request_timeout_s: float = 120.0,
    max_backoff_s: float = 20.0,
    ollama_url: str = "http://127.0.0.1:11434",
    openai_base_url: str = "https://api.openai.com/v1",
    openai_api_key_env: str = "OPENAI_API_KEY",
    local_models: dict[str, str] = {},  # noqa: B006
    mlflow_url: str = "",
    mlflow_traces: Literal["all", "final", "off"] = "final",
    mlflow_flush_s: float = 60.0,
    no_cache: bool = False,
    refresh: bool = False,
    execution: Literal["local", "pool"] = "local",
    max_inflight: int = 1,
    judge: Literal["human", "skip", "model", "human+model"] = "human",
    judge_model: str = "",
    judges: Literal["human", "model", "all"] = "human",
    judge_mode: Literal["rubric", "pairwise"] = "rubric",
    judge_timeout_s: int = 604800,
    baseline: str = "",
    tolerance: float = 0.0,
    allow_prompt_change: bool = False,
    allow_uncompared: bool = False,
    require_improvement: bool = False,
    fixtures: bool = False,
    run_id: str = "",
) -> dict:
    """Run a benchmark grid (model × prompt version × scenario); returns the run id and leaderboard.

    Args:
        suite: Suite folder (prompt versions, scenarios, rubric).
        models: Model specs `provider:model` (local, ollama, openai); a list, or one string
            of comma-separated specs.
        prompts: Prompt versions to run; empty means all of the suite's.
        n_candidates: Candidates generated per cell.
        n_scenarios: Use at most this many scenarios; 0 = all.
        temperature: Sampling temperature.
        seed: Base seed; candidate i is generated with seed + i.
        max_tokens: Completion token limit per call.
        experiment: MLflow experiment; empty = benchlib-<suite name>.
        max_model_b: Refuse models larger than this many billion parameters.
        allow_unknown_size: Run a model whose server does not tell its parameter count (the
            size guard cannot check it); off, such a model is refused.
        max_attempts_per_cell: Cap on provider calls per cell, retries included; 0 = 3 × n.
        request_timeout_s: Timeout of one provider call.
        max_backoff_s: Longest wait between two attempts of a call (exponential backoff with
            jitter); a Retry-After asking for more fails the call.
        ollama_url: Ollama server URL.
        openai_base_url: OpenAI-compatible base URL (ends in /v1).
        openai_api_key_env: Environment variable holding the OpenAI-compatible API key.
        local_models: Extra `local:` aliases: alias -> GGUF file path.
        mlflow_url: MLflow tracking URI; empty = the environment's MLFLOW_TRACKING_URI, else
            the sqlite store under .benchlib/.
        mlflow_traces: MLflow traces, one per candidate: all = as each cell is recorded (watch
            a run live; each trace is written again with its scores); final = once the run is
            scored, scores included (half the writes); off = none.
        mlflow_flush_s: How long the end of a run waits for MLflow to take the backlog; what is
            left stays queued for `benchlib sync`.
        no_cache: Neither read nor write the response cache.
        refresh: Call the provider again and refresh the cache.
        execution: local: this process generates every cell; pool: one child flow run per
            model on the `benchlib-gpu` work pool (see deployments/README.md).
        max_inflight: Requests in flight at once to a model's server within its one `gpu` slot,
            for servers that batch them (vLLM, llama.cpp; the local server gets this many slots).
        judge: human: wait for judgements (a deployment suspends; the CLI offers terminal
            judging); skip: objective scores only; model: `judge_model` scores the blind
            items after generation; human+model: the model, then wait for people as `human`.
        judge_model: The judge model (`provider:model`) of `judge: model` and `human+model`;
            it must not be one of `models`.
        judges: Whose judgements the composite uses: human: people's where any exist, else the
            model judges'; model: the model judges' only; all: both, averaged.
        judge_mode: rubric: judges score each output on the rubric's criteria; pairwise: they
            pick the better of two blind outputs for the same scenario (Bradley-Terry strengths).
        judge_timeout_s: How long a deployment run waits for judges.
        baseline: Compare with this run id or `latest` (previous completed run); empty = no.
        tolerance: Accept a mean quality drop down to this (eval report).
        allow_prompt_change: Pair cells whose prompt text changed: the prompt is the change tested.
        allow_uncompared: Accept the verdict although cells of the run have no comparable
            baseline cell (recorded in the eval report); without it they make it not acceptable.
        require_improvement: Acceptable only if every pair improved and none broke (aggregate
            score > 0), instead of: no regression beyond the tolerance.
        fixtures: Use the scenarios stored for this suite (admin API fixtures, latest version of
            each, integrity-checked) instead of the suite's scenarios file.
        run_id: Id of the new run; empty = generated (the admin API picks it to answer with it
            before the flow starts).
    """
    config = build_config(dict(locals()), source="flow parameters")
    record_process(current_flow_run_id())  # `benchlib resume` checks this process is gone
    run = plan(config)
    run_id = run.context.run_id
    label_flow_run(run_id)
    logger = get_run_logger()
    blocks = model_blocks(run.cells)
    logger.info(
        f"benchmark run {run_id}: {len(run.cells)} cells in {len(blocks)} model block(s); "
        f"judge page {prefect_views.judge_page_url(run_id)}"
    )
    mark_run(run_id, RunStatus.running)
    try:
        if config.execution == "pool":
            fan_out(run.context, run.cells)
        else:
            for number, block in enumerate(blocks, start=1):
                model = block[0].model
                logger.info(f"model block {number}/{len(blocks)}: {model}, {len(block)} cells")
                generate_block(run.context, block)
                done = runs.cells_done(run_id)
                logger.info(
                    f"model block {number}/{len(blocks)} done: {done}/{len(run.cells)} cells"
                )
        if config.judge in ("model", "human+model"):
            judged = judge_with_model(run_id, config.judge_model, config.no_cache, config.refresh)
            logger.info(
                f"model judge {judged.judge}: {judged.items} item(s), {judged.failed} malformed "
                f"answer(s), {judged.provider_calls} provider call(s)"
            )
        if config.judge in WAITS_FOR_PEOPLE and deployment.get_id():
            push_to_mlflow(run_id, config.mlflow_flush_s)
            await_judgements(run_id, config.judge_timeout_s)
        mark_run(run_id, RunStatus.scoring)
        scoring(run_id)
        board = compare(
            run_id,
            config.baseline,
            config.tolerance,
            config.allow_prompt_change,
            config.allow_uncompared,
            config.require_improvement,
        )
    except Exception as exc:
        mark_run(run_id, RunStatus.failed, f"{type(exc).__name__}: {exc}")
        push_to_mlflow(run_id, config.mlflow_flush_s)
        raise
    # A failed cell is a result (recorded with its reason), not a failed run.
    # Counted from the record: with `execution: pool` the cells ran in other processes.
    failed = sum(cell.status == CellStatus.failed for cell in runs.run_cells(run_id))
    if failed:
        summary = f"{failed} of {len(run.cells)} cells failed"
        mark_run(run_id, RunStatus.completed_with_failures, summary)
    else:
        mark_run(run_id, RunStatus.completed)
    push_to_mlflow(run_id, config.mlflow_flush_s)
    publish_run_summary(run_id, board)
    loads, load_s = runs.model_loads(run_id)
    print(
        f"benchmark run {run_id}: {len(run.cells)} cells ({failed} failed), "
        f"{len(board.rows)} leaderboard rows, {loads} model load(s) in {load_s:.1f} s"
    )
    return {"run_id": run_id, "leaderboard": board}
