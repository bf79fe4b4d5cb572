"""Runs: trigger a benchmark (a flow run of the deployment), list, follow, read results."""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from prefect.client.schemas.objects import FlowRun
from pydantic import BaseModel, Field

from benchlib import orchestration, prefect_views, reports
from benchlib import runs as records
from benchlib.api.settings import ApiSettings, Settings
from benchlib.config import BenchmarkConfig, build_config
from benchlib.errors import BenchlibError, NotFound, Unavailable
from benchlib.records import Run, RunStatus

router = APIRouter(tags=["runs"])


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
        values = await request.json()
    except ValueError:
        raise BenchlibError("request body: not JSON; send a config object") from None
    if not isinstance(values, dict):
        raise BenchlibError(f"request body: expected a config object, got {type(values).__name__}")
    return await run_in_threadpool(_trigger, values, settings)


def _trigger(values: dict[str, Any], settings: ApiSettings) -> Triggered:
    config = build_config({"run_id": records.new_run_id(), **values}, "request body")
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
    experiment: str | None = None,
    model: str | None = None,
    prompt: str | None = None,
    status: RunStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> list[RunSummary]:
    """Newest first. `model`/`prompt` match runs with a cell of that model spec/prompt version."""
    found = records.list_runs(
        limit, experiment=experiment, model=model, prompt=prompt, status=status
    )
    return [RunSummary.model_validate(_summary(run)) for run in found]


def _state(flow_run: FlowRun | None) -> str | None:
    return flow_run.state.name if flow_run and flow_run.state else None


@router.get("/runs/{run_id}")
def get_run(run_id: str, settings: Settings) -> RunDetail:
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
    failed = state is not None and state.is_final()
    parameters = flow_run.parameters
    return RunDetail(
        id=run_id,
        experiment=parameters.get("experiment", ""),
        suite=parameters.get("suite", ""),
        status=RunStatus.failed if failed else RunStatus.pending,
        error=f"flow run {state.name}: {state.message}" if failed else None,
        models=parameters.get("models", []),
        prompts=parameters.get("prompts", []),
        n_cells=0,
        flow_run_id=str(flow_run.id),
        flow_run_state=_state(flow_run),
        progress=Progress(done=0, total=0),
        created_at=flow_run.created,
        started_at=None,
        finished_at=None,
        links=run_links(settings, run_id, str(flow_run.id), None),
    )


@router.get("/runs/{run_id}/leaderboard")
def get_leaderboard(run_id: str) -> dict[str, Any]:
    """The JSON `benchlib leaderboard RUN --json` writes (as last published, else computed)."""
    return reports.current_leaderboard(records.get_run(run_id))


@router.get("/runs/{run_id}/eval-report")
def get_eval_report(run_id: str) -> dict[str, Any]:
    """The JSON `benchlib compare --eval-report` writes (runs compared with a baseline)."""
    run = records.get_run(run_id)
    if run.eval_report is None:
        raise NotFound(f"run {run.id} has no eval report: it was not compared with a baseline")
    return run.eval_report
