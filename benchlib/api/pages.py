"""The pages a person opens in a browser: login, runs, a run's judge page and leaderboard."""

from importlib.resources import files
from typing import Annotated, TypedDict

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from pydantic import BaseModel

from benchlib.api.auth import COOKIE, csrf_token, require_page_token, token_ok
from benchlib.api.policy import RunId
from benchlib.api.runs import run_links
from benchlib.api.settings import Settings
from benchlib.errors import NotFound
from benchlib.evaluation import judging, pairwise, reports
from benchlib.evaluation.reports import TEMPLATES
from benchlib.store import runs
from benchlib.store.records import Run, RunStatus

router = APIRouter(include_in_schema=False)
authed = [Depends(require_page_token)]


def _page(name: str, status_code: int = 200, **context: object) -> HTMLResponse:
    return HTMLResponse(TEMPLATES.get_template(name).render(**context), status_code=status_code)


def _local(path: str) -> str:
    """Only a path on this site: /login must not redirect anywhere else."""
    return path if path.startswith("/") and not path.startswith("//") else "/"


# Swagger UI's files, served here so /docs works without internet (the CDN FastAPI points at
# is out of reach on many lab networks). fastapi-offline ships Swagger UI 5, which reads the
# OpenAPI 3.1 FastAPI writes.
SWAGGER_FILES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon.png": "image/png",
}


class SwaggerUrls(TypedDict):
    swagger_js_url: str
    swagger_css_url: str
    swagger_favicon_url: str


SWAGGER_URLS: SwaggerUrls = {
    "swagger_js_url": "/docs/assets/swagger-ui-bundle.js",
    "swagger_css_url": "/docs/assets/swagger-ui.css",
    "swagger_favicon_url": "/docs/assets/favicon.png",
}


@router.get("/docs/assets/{name}", dependencies=authed)
def docs_asset(name: str) -> FileResponse:
    if name not in SWAGGER_FILES:
        raise NotFound(f"no docs asset {name!r} (known: {', '.join(SWAGGER_FILES)})")
    path = files("fastapi_offline") / "static" / name
    return FileResponse(str(path), media_type=SWAGGER_FILES[name])


@router.get("/login")
def login_form(next: str = "/") -> HTMLResponse:
    return _page("login.html.j2", next=_local(next), problem="")


@router.post("/login", response_model=None)
def login(
    request: Request, token: Annotated[str, Form()], next: Annotated[str, Form()] = "/"
) -> HTMLResponse | RedirectResponse:
    """The token becomes an HttpOnly cookie: the pages' scripts call the API with it."""
    if not token_ok(request, token):
        return _page("login.html.j2", 401, next=_local(next), problem="wrong token")
    response = RedirectResponse(_local(next), status_code=303)
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/")
    return response


REFRESH_S = 10


class RunFilters(BaseModel):
    experiment: str | None = None
    status: RunStatus | None = None
    model: str | None = None
    prompt: str | None = None


@router.get("/", dependencies=authed)
def runs_page(
    settings: Settings,
    experiment: str = "",
    status: str = "",
    model: str = "",
    prompt: str = "",
) -> HTMLResponse:
    """The runs, newest first, with progress and links; filtered like GET /api/runs (an
    unknown status matches nothing rather than failing the page)."""
    known = {s.value for s in RunStatus}
    filters = RunFilters(
        experiment=experiment.strip() or None,
        status=RunStatus(status) if status in known else None,
        model=model.strip() or None,
        prompt=prompt.strip() or None,
    )
    found = [] if status and status not in known else runs.list_runs(100, **dict(filters))
    rows = [
        {
            "run": run,
            "done": runs.cells_done(run.id),
            "links": run_links(settings, run.id, run.flow_run_id, run),
        }
        for run in found
    ]
    return _page(
        "runs.html.j2",
        rows=rows,
        filters=filters,
        filtered=any(v.strip() for v in (experiment, status, model, prompt)),
        statuses=sorted(known),
        refresh_s=REFRESH_S,
    )


def _run_or_page(run_id: str) -> Run | HTMLResponse:
    """A person who follows a stale link gets a page saying so, not JSON."""
    try:
        return runs.get_run(run_id)
    except NotFound as exc:
        return _page("missing.html.j2", 404, detail=str(exc))


@router.get("/runs/{run_id}/judge", dependencies=authed)
def judge_page(request: Request, run_id: RunId) -> HTMLResponse:
    """Its script sends the CSRF token with the judgements (the cookie alone is not enough)."""
    run = _run_or_page(run_id)
    if isinstance(run, HTMLResponse):
        return run
    token = request.app.state.settings.token
    return _page(
        "judge.html.j2",
        run=run,
        rubric=judging.rubric_of(run),
        csrf=csrf_token(token) if token else "",
        pairwise=pairwise.is_pairwise(run),
    )


@router.get("/runs/{run_id}/leaderboard", dependencies=authed)
def leaderboard_page(run_id: RunId) -> HTMLResponse:
    """The report `benchlib report RUN --html` writes: table, heatmap, interval bars."""
    run = _run_or_page(run_id)
    if isinstance(run, HTMLResponse):
        return run
    return HTMLResponse(reports.render_html(run, reports.current_leaderboard(run)))
