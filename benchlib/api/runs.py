"""Runs: trigger a benchmark (a flow run of the deployment), list, follow, read results."""

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from prefect.client.schemas.objects import FlowRun
from pydantic import BaseModel, Field

from benchlib.api import policy
from benchlib.api.policy import RunId, check_bounds
from benchlib.api.settings import ApiSettings, Settings
from benchlib.config import BenchmarkConfig, build_config, comma_list
from benchlib.errors import BenchlibError, NotFound, Unavailable
from benchlib.evaluation import reports
from benchlib.evaluation.leaderboard import Leaderboard
from benchlib.pipeline import orchestration, prefect_views
from benchlib.store import runs as records
from benchlib.store.records import Run, RunStatus

router = APIRouter(tags=["runs"])
Filter = Annotated[str | None, Query(max_length=200)]


class Links(BaseModel):
    prefect: str | None = Field(description="The flow run in the Prefect UI.")
    mlflow: str | None = Field(description="The parent run in the MLflow UI, if it has one.")
    judge_page: str
    leaderboard_page: str


class Progress(BaseModel):
    done: int = Field(description="Cells finished (completed or failed).")
    total: int


class RunSummary(BaseModel):
    id: str
    experiment: str
    suite: str
    status: RunStatus
    models: list[str]
    prompts: list[str] = Field(description="Prompt versions asked for; empty = all.")
    n_cells: int
    flow_run_id: str | None
    created_at: datetime
    finished_at: datetime | None


class RunDetail(RunSummary):
    error: str | None
    flow_run_state: str | None = Field(description="Prefect's state of the flow run.")
    progress: Progress
    started_at: datetime | None
    links: Links


class CandidateDetail(BaseModel):
    index: int = Field(description="Attempt index within the cell (seed + index).")
    step: str = Field(description="Chain step (`output` for a single-step version).")
    text: str
    error: str | None = Field(description="Why this step produced no output.")
    cached: bool = Field(description="Answered from the response cache, no provider call.")
    latency_s: float
    completion_tokens: int
    scores: dict[str, float] = Field(description="Objective scores and composites by name.")


class CellDetail(BaseModel):
    id: str
    index: int
    model: str
    prompt_version: str
    scenario_id: str
    status: str
    error: str | None
    candidates: list[CandidateDetail]


class CellPage(BaseModel):
    total: int = Field(description="Cells in the run.")
    offset: int
    limit: int
    cells: list[CellDetail]


class Triggered(BaseModel):
    run_id: str
    flow_run_id: str
    status: RunStatus
    links: Links


def _summary(run: Run) -> dict[str, Any]:
    return {
        **run.model_dump(),
        "models": run.config.get("models", []),
        "prompts": run.config.get("prompts", []),
    }


def run_links(
    settings: ApiSettings, run_id: str, flow_run_id: str | None, run: Run | None
) -> Links:
    return Links(
        prefect=(
            f"{settings.prefect_ui_url}/runs/flow-run/{flow_run_id}"
            if flow_run_id and settings.prefect_ui_url
            else None
        ),
        mlflow=prefect_views.mlflow_run_url(run, settings.mlflow_ui_url) if run else None,
        judge_page=f"/runs/{run_id}/judge",
        leaderboard_page=f"/runs/{run_id}/leaderboard",
    )


@router.post(
    "/runs",
    status_code=202,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": BenchmarkConfig.model_json_schema()}},
        }
    },
)
async def trigger_run(request: Request, settings: Settings) -> Triggered:
    """The body is a config (the keys of a config file; missing keys keep the deployment's
    defaults). It is validated as `benchlib run` validates it, with the same messages (suite,
    scorers, models reachable and within the size limit); nothing starts when it is invalid."""
    try:
        values = json.loads(await request.body(), parse_constant=_no_constant)
    except ValueError as exc:
        raise BenchlibError(f"request body: not JSON ({exc}); send a config object") from None
    if not isinstance(values, dict):
        raise BenchlibError(f"request body: expected a config object, got {type(values).__name__}")
    check_bounds(values)
    return await run_in_threadpool(_trigger, values, settings)


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _trigger(values: dict[str, Any], settings: ApiSettings) -> Triggered:
    config = build_config({"run_id": records.new_run_id(), **values}, "request body")
    policy.check_config(config, settings)
    if not settings.prefect_api_url:  # before the preflight, which asks every model server
        raise Unavailable("no Prefect server: start the API with PREFECT_API_URL set")
    records.check_run(config, config.run_id)
    flow_run_id = orchestration.start_deployment_run(settings.deployment, config)
    return Triggered(
        run_id=config.run_id,
        flow_run_id=flow_run_id,
        status=RunStatus.pending,
        links=run_links(settings, config.run_id, flow_run_id, None),
    )


@router.get("/runs")
def list_runs(
    experiment: Filter = None,
    model: Filter = None,
    prompt: Filter = None,
    provider: Filter = None,
    status: RunStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> list[RunSummary]:
    """Newest first. `model`/`provider`/`prompt` match runs with a cell of that model spec,
    provider (`ollama`, `openai`, `local`) or prompt version."""
    found = records.list_runs(
        limit, experiment=experiment, model=model, prompt=prompt, provider=provider, status=status
    )
    return [RunSummary.model_validate(_summary(run)) for run in found]


def _state(flow_run: FlowRun | None) -> str | None:
    return flow_run.state.name if flow_run and flow_run.state else None


@router.get("/runs/{run_id}")
def get_run(run_id: RunId, settings: Settings) -> RunDetail:
    """Status, progress and links. A run triggered but not yet planned by its flow is
    `pending`; one whose flow run ended before recording it is `failed`."""
    try:
        run = records.get_run(run_id)
    except NotFound:
        flow_run = orchestration.find_flow_run(run_id) if settings.prefect_api_url else None
        if flow_run is None:
            raise
        return _unrecorded(settings, run_id, flow_run)
    flow_run = (
        orchestration.find_flow_run(run.id, run.flow_run_id) if settings.prefect_api_url else None
    )
    status, error = run.status, run.error
    state = flow_run.state if flow_run else None
    working = status in (RunStatus.pending, RunStatus.running, RunStatus.scoring)
    if working and state and state.is_final() and not state.is_completed():
        # The worker died under it. (A run awaiting judges stays so when Prefect times its
        # flow run out: the CLI can still finish it.)
        status = RunStatus.failed
        error = error or f"flow run {state.name}: {state.message}"
    return RunDetail.model_validate(
        {
            **_summary(run),
            "status": status,
            "error": error,
            "flow_run_state": _state(flow_run),
            "progress": Progress(done=records.cells_done(run.id), total=run.n_cells),
            "links": run_links(settings, run.id, run.flow_run_id, run),
        }
    )


def _unrecorded(settings: ApiSettings, run_id: str, flow_run: FlowRun) -> RunDetail:
    state = flow_run.state
    error = (
        f"flow run {state.name}: {state.message}"
        if state is not None and state.is_final()
        else None
    )
    parameters = flow_run.parameters
    return RunDetail(
        id=run_id,
        experiment=parameters.get("experiment", ""),
        suite=parameters.get("suite", ""),
        status=RunStatus.failed if error is not None else RunStatus.pending,
        error=error,
        # Deployment parameters may be comma-separated strings: read them as the flow does.
        models=comma_list(parameters.get("models", [])),
        prompts=comma_list(parameters.get("prompts", [])),
        n_cells=0,
        flow_run_id=str(flow_run.id),
        flow_run_state=_state(flow_run),
        progress=Progress(done=0, total=0),
        created_at=flow_run.created,
        started_at=None,
        finished_at=None,
        links=run_links(settings, run_id, str(flow_run.id), None),
    )


@router.get("/runs/{run_id}/cells")
def get_cells(
    run_id: str,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> CellPage:
    """A page of the run's cells in grid order, each with its candidates (every attempt and
    chain step) and their scores. Long runs are read page by page; there is no synchronous
    "run and wait" endpoint: trigger, then follow `GET /runs/{id}` (see docs)."""
    run = records.get_run(run_id)
    total, cells, candidates, scores = records.cell_page(run.id, offset, limit)
    by_candidate: dict[int, dict[str, float]] = {}
    for score in scores:
        by_candidate.setdefault(score.candidate_id, {})[score.name] = score.value
    by_cell: dict[str, list[CandidateDetail]] = {}
    for candidate in candidates:
        by_cell.setdefault(candidate.cell_id, []).append(
            CandidateDetail(
                **candidate.model_dump(
                    include={"index", "step", "text", "error", "cached", "latency_s"}
                ),
                completion_tokens=candidate.completion_tokens,
                scores=by_candidate.get(candidate.id or 0, {}),
            )
        )
    return CellPage(
        total=total,
        offset=offset,
        limit=limit,
        cells=[
            CellDetail(
                **cell.model_dump(
                    include={"id", "index", "model", "prompt_version", "scenario_id", "error"}
                ),
                status=str(cell.status),
                candidates=by_cell.get(cell.id, []),
            )
            for cell in cells
        ],
    )


@router.get("/runs/{run_id}/leaderboard")
def get_leaderboard(run_id: RunId) -> Leaderboard:
    """The JSON `benchlib leaderboard RUN --json` writes (as last published, else computed)."""
    return reports.current_leaderboard(records.get_run(run_id))


@router.get("/runs/{run_id}/eval-report")
def get_eval_report(run_id: RunId) -> dict[str, Any]:
    """The JSON `benchlib compare --eval-report` writes (runs compared with a baseline)."""
    run = records.get_run(run_id)
    if run.eval_report is None:
        raise NotFound(f"run {run.id} has no eval report: it was not compared with a baseline")
    return run.eval_report
