"""The pages a person opens in a browser: login, runs, a run's judge page and leaderboard."""

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from benchlib import judging, reports, runs
from benchlib.api.auth import COOKIE, csrf_token, require_page_token, token_ok
from benchlib.api.policy import RunId
from benchlib.reports import TEMPLATES

router = APIRouter(include_in_schema=False)
authed = [Depends(require_page_token)]


def _page(name: str, status_code: int = 200, **context: object) -> HTMLResponse:
    return HTMLResponse(TEMPLATES.get_template(name).render(**context), status_code=status_code)


def _local(path: str) -> str:
    """Only a path on this site: /login must not redirect anywhere else."""
    return path if path.startswith("/") and not path.startswith("//") else "/"


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


@router.get("/", dependencies=authed)
def runs_page() -> HTMLResponse:
    return _page("runs.html.j2", runs=runs.list_runs(100))


@router.get("/runs/{run_id}/judge", dependencies=authed)
def judge_page(request: Request, run_id: RunId) -> HTMLResponse:
    """Its script sends the CSRF token with the judgements (the cookie alone is not enough)."""
    run = runs.get_run(run_id)
    token = request.app.state.settings.token
    return _page(
        "judge.html.j2",
        run=run,
        rubric=judging.rubric_of(run),
        csrf=csrf_token(token) if token else "",
    )


@router.get("/runs/{run_id}/leaderboard", dependencies=authed)
def leaderboard_page(run_id: RunId) -> HTMLResponse:
    """The report `benchlib report RUN --html` writes: table, heatmap, interval bars."""
    run = runs.get_run(run_id)
    return HTMLResponse(reports.render_html(run, reports.current_leaderboard(run)))
