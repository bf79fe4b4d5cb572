"""The admin API on a real uvicorn server on loopback: auth on every route, validation, fixtures,
judging and results on records in the real database, and schemathesis against its OpenAPI spec.
(Triggering through a real Prefect server is in test_api_flow.py.)"""

import os
import re
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from prefect import get_client
from schemathesis.checks import not_a_server_error
from sqlmodel import select

from benchlib.api.app import create_app
from benchlib.api.settings import ApiSettings
from benchlib.config import build_config
from benchlib.evaluation import reports
from benchlib.spec import fixtures
from benchlib.spec.hashing import scenario_hash
from benchlib.store import runs
from benchlib.store.db import session
from benchlib.store.records import Fixture, Judgement, Run
from tests.conftest import TIPS
from tests.support.browser import launch, needs_chromium
from tests.support.cli import benchlib
from tests.support.crafted import make_run
from tests.support.servers import serve_app

TOKEN = "s3cret-test-token"
FUZZ = "benchmark/api-unserved"
RIGHT = {"Authorization": f"Bearer {TOKEN}"}
PUBLIC = {("GET", "/api/health"), ("GET", "/login"), ("POST", "/login")}


def routes_of(app) -> list[tuple[str, str]]:
    """Every (method, path) the app serves, through its included routers."""
    found = []
    for route in app.routes:
        if hasattr(route, "original_router"):
            prefix = route.include_context.prefix
            found += [(m, prefix + r.path) for r in route.original_router.routes for m in r.methods]
        else:
            found += [(m, route.path) for m in route.methods]
    return sorted(set(found) - {("HEAD", path) for _, path in found})


APP = create_app(ApiSettings(token=TOKEN))
ROUTES = [route for route in routes_of(APP) if route not in PUBLIC]


# Model endpoints the tests' requests name, allowed as an operator allows them.
UNREACHABLE = ["http://127.0.0.1:9/v1", "http://127.0.0.1:9"]


@pytest.fixture(scope="module")
def api(prefect_api: str, llm_url: str) -> Iterator[str]:
    """The app on loopback, on a real Prefect server with a deployment nobody serves: flow runs
    it creates stay Scheduled, nothing executes."""
    from flows.benchmark import benchmark

    saved = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = prefect_api  # the server's threads read the environment
    benchmark.to_deployment(name=FUZZ.split("/")[1]).apply()
    settings = ApiSettings(
        token=TOKEN,
        deployment=FUZZ,
        prefect_api_url=prefect_api,
        allowed_endpoints=[f"{llm_url}/v1", *UNREACHABLE],
    )
    with serve_app(create_app(settings), "/api/health") as url:
        yield url
    if saved is None:
        os.environ.pop("PREFECT_API_URL")
    else:
        os.environ["PREFECT_API_URL"] = saved


@pytest.fixture(scope="module")
def judged_run(api: str) -> str:
    return make_run(
        "api-crafted-1",
        [{"scenario": "a", "text": "Plan the day"}, {"scenario": "b", "text": "Rest"}],
        experiment="crafted-api",
    )


def test_every_route_is_covered() -> None:
    """A new route joins the auth test below without anyone listing it."""
    assert ("POST", "/api/runs") in ROUTES and ("GET", "/runs/{run_id}/judge") in ROUTES
    assert ("GET", "/openapi.json") in ROUTES and ("GET", "/docs") in ROUTES
    assert len(ROUTES) >= 17


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_auth_on_every_route(api: str, method: str, path: str) -> None:
    url = api + re.sub(r"\{[^}]+\}", "x", path)
    body = {"json": {"suite": "nope"}} if method in ("POST", "PUT") else {}
    page = not path.startswith("/api/") and path not in ("/openapi.json", "/docs")
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        reply = httpx.request(method, url, headers=headers, **body)
        if page:
            assert reply.status_code == 303, reply.text
            assert reply.headers["location"].startswith("/login?next=")
        else:
            assert reply.status_code == 401, reply.text
            assert reply.json()["detail"].startswith("missing or wrong token")
            assert reply.headers["www-authenticate"] == "Bearer"
    reply = httpx.request(method, url, headers=RIGHT, **body)
    assert reply.status_code not in (303, 401, 500), reply.text


def test_health_and_docs(api: str) -> None:
    assert httpx.get(f"{api}/api/health").json() == {"status": "ok"}
    spec = httpx.get(f"{api}/openapi.json", headers=RIGHT).json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "swagger-ui" in httpx.get(f"{api}/docs", headers=RIGHT).text


def test_login_sets_an_http_only_cookie_the_pages_and_api_accept(api: str) -> None:
    wrong = httpx.post(f"{api}/login", data={"token": "nope", "next": "/"})
    assert wrong.status_code == 401 and "wrong token" in wrong.text
    elsewhere = httpx.post(f"{api}/login", data={"token": TOKEN, "next": "//evil.example/"})
    assert elsewhere.headers["location"] == "/"
    with httpx.Client(base_url=api) as browser:
        reply = browser.post("/login", data={"token": TOKEN, "next": "/runs/x/judge"})
        assert reply.status_code == 303 and reply.headers["location"] == "/runs/x/judge"
        cookie = reply.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert browser.get("/api/experiments").status_code == 200
        assert browser.get("/").status_code == 200


def test_the_service_refuses_to_start_without_a_token(monkeypatch) -> None:
    monkeypatch.delenv("BENCHLIB_API_TOKEN", raising=False)
    refused = benchlib("api", "--port", "1")
    assert refused.returncode == 2
    assert "BENCHLIB_API_TOKEN is not set" in refused.stderr and "--demo" in refused.stderr
    exposed = benchlib("api", "--demo", "--host", "0.0.0.0", "--port", "1")
    assert exposed.returncode == 2 and "loopback only" in exposed.stderr


def test_a_bad_config_is_refused_with_the_cli_message_and_nothing_starts(api: str) -> None:
    before = len(runs.list_runs(1000))
    for body, expected in (
        ({"n_candidates": 0}, "n_candidates: Input should be greater than or equal to 1 (got 0)"),
        ({"models": ["gpt4"]}, "'gpt4' is not a model spec"),
        ({"suite": "prompts/no-such-suite"}, "prompts/no-such-suite: not a suite folder"),
        ({"colour": "red"}, "colour: Extra inputs are not permitted"),
        ({"run_id": "../x"}, "run_id: String should match pattern"),
    ):
        reply = httpx.post(f"{api}/api/runs", json=body, headers=RIGHT)
        assert reply.status_code == 422, reply.text
        assert expected in reply.json()["detail"]
    cli = benchlib("run", str(TIPS), "--n-candidates", "0")
    assert "n_candidates: Input should be greater than or equal to 1 (got 0)" in cli.stderr
    assert len(runs.list_runs(1000)) == before


def test_without_prefect_a_trigger_says_so_before_asking_the_models() -> None:
    """The service's own set-up is checked first: a model server that is down (the preflight
    would say so, slowly) is not what an admin without PREFECT_API_URL needs to hear."""
    body = {"models": ["openai:smollm2"], "openai_base_url": "http://127.0.0.1:9/v1"}
    settings = ApiSettings(token=TOKEN, allowed_endpoints=UNREACHABLE)
    with serve_app(create_app(settings), "/api/health") as url:
        reply = httpx.post(f"{url}/api/runs", json=body, headers=RIGHT, timeout=60)
    assert reply.status_code == 503, reply.text
    assert "PREFECT_API_URL" in reply.json()["detail"]


def test_trigger_creates_a_flow_run_of_the_deployment(
    api: str, judged_run: str, prefect_api: str, small_config: dict
) -> None:
    body = small_config | {"n_scenarios": 1}
    reply = httpx.post(f"{api}/api/runs", json=body, headers=RIGHT, timeout=60)
    assert reply.status_code == 202, reply.text
    triggered = reply.json()
    assert triggered["status"] == "pending"
    ui = prefect_api.removesuffix("/api")
    assert triggered["links"]["prefect"] == f"{ui}/runs/flow-run/{triggered['flow_run_id']}"
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(triggered["flow_run_id"])
    # Only the keys given (and the run id): the deployment's own defaults stay for the rest.
    assert flow_run.parameters == body | {"run_id": triggered["run_id"]}
    assert flow_run.tags == [f"benchlib-run:{triggered['run_id']}"]
    detail = httpx.get(f"{api}/api/runs/{triggered['run_id']}", headers=RIGHT).json()
    assert (detail["status"], detail["flow_run_state"]) == ("pending", "Scheduled")
    assert detail["flow_run_id"] == triggered["flow_run_id"]

    taken = httpx.post(f"{api}/api/runs", json=body | {"run_id": "api-crafted-1"}, headers=RIGHT)
    assert taken.status_code == 409
    assert taken.json() == {
        "detail": "run_id: a run 'api-crafted-1' exists or is starting; pick another id"
    }


def test_runs_experiments_and_results(api: str, judged_run: str) -> None:
    def ids(**query) -> list[str]:
        reply = httpx.get(f"{api}/api/runs", params=query, headers=RIGHT)
        return [r["id"] for r in reply.json()]

    assert judged_run in ids(experiment="crafted-api", model="openai:m", prompt="v1")
    assert judged_run in ids(status="completed")
    assert judged_run not in ids(model="openai:other") + ids(prompt="v9") + ids(status="failed")
    assert httpx.get(f"{api}/api/runs?status=done", headers=RIGHT).status_code == 422

    detail = httpx.get(f"{api}/api/runs/{judged_run}", headers=RIGHT).json()
    assert detail["status"] == "completed"
    assert detail["progress"] == {"done": 2, "total": 2}
    assert detail["links"]["judge_page"] == f"/runs/{judged_run}/judge"
    missing = httpx.get(f"{api}/api/runs/nope", headers=RIGHT)
    assert missing.status_code == 404 and missing.json() == {"detail": "no run 'nope'"}

    experiments = httpx.get(f"{api}/api/experiments", headers=RIGHT).json()
    crafted = next(e for e in experiments if e["name"] == "crafted-api")
    assert crafted["runs"] == 1 and crafted["last_run_id"] == judged_run

    board = httpx.get(f"{api}/api/runs/{judged_run}/leaderboard", headers=RIGHT).json()
    assert board == reports.current_leaderboard(runs.get_run(judged_run)).model_dump(mode="json")
    no_report = httpx.get(f"{api}/api/runs/{judged_run}/eval-report", headers=RIGHT)
    assert no_report.status_code == 404 and "not compared" in no_report.json()["detail"]
    page = httpx.get(f"{api}/runs/{judged_run}/leaderboard", headers=RIGHT)
    assert page.status_code == 200 and '<table id="leaderboard">' in page.text


def test_judging_validates_like_judge_apply(api: str, judged_run: str) -> None:
    url = f"{api}/api/runs/{judged_run}"
    queue = httpx.get(f"{url}/judging", params={"judge": "ann"}, headers=RIGHT).json()
    assert (queue["total"], queue["pending"], queue["format"]) == (2, 2, "benchlib-judge-v1")
    criteria = [c["name"] for c in queue["rubric"]["criteria"]]
    assert criteria == ["relevance", "actionability", "tone"]
    assert all(set(item) >= {"item_id", "context", "output"} for item in queue["items"])
    first, second = (item["item_id"] for item in queue["items"])

    bad = {"judge": "ann", "items": [{"item_id": first, "scores": {"relevance": 9}}]}
    refused = httpx.post(f"{url}/judgements", json=bad, headers=RIGHT)
    assert refused.status_code == 422
    detail = refused.json()["detail"]
    assert "nothing applied" in detail and "relevance = 9 is out of range 1–5" in detail
    assert "missing scores for ['actionability', 'tone']" in detail
    with session() as s:
        assert not s.exec(select(Judgement).where(Judgement.run_id == judged_run)).all()

    scores = {"relevance": 4, "actionability": 3, "tone": 5}
    good = {"judge": "ann", "items": [{"item_id": first, "scores": scores}]}
    applied = httpx.post(f"{url}/judgements", json=good, headers=RIGHT).json()
    assert applied == {"added": 1, "updated": 0, "unchanged": 0, "pending": 1}
    again = httpx.post(f"{url}/judgements", json=good, headers=RIGHT).json()
    assert again["unchanged"] == 1
    left = httpx.get(f"{url}/judging", params={"judge": "ann"}, headers=RIGHT).json()
    assert [item["item_id"] for item in left["items"]] == [second]
    # The completed run's leaderboard was refreshed with the judgement.
    assert runs.get_run(judged_run).leaderboard["metric"] == "composite"

    resumed = httpx.post(f"{url}/resume", json={"approve": True}, headers=RIGHT)
    assert resumed.status_code == 409
    assert resumed.json() == {"detail": f"run {judged_run} has no Prefect flow run to resume"}


def test_unexpected_errors_are_a_generic_500(api: str, caplog) -> None:
    """A run whose stored rubric is corrupt: the reply and the log name no content."""
    make_run("api-crafted-broken", [{"scenario": "a"}])
    with session() as s:
        s.get(Run, "api-crafted-broken").rubric = {"secret": "sk-do-not-show"}
    reply = httpx.get(f"{api}/api/runs/api-crafted-broken/judging", headers=RIGHT)
    assert reply.status_code == 500
    assert reply.json() == {"detail": "internal error; the server log says where"}
    assert "sk-do-not-show" not in reply.text and "Traceback" not in reply.text
    assert "unexpected ValidationError" in caplog.text and "sk-do-not-show" not in caplog.text


def test_fixtures_crud_versions_and_hash(api: str) -> None:
    url = f"{api}/api/fixtures"
    vars_1 = {"persona": "a baker", "tasks": "bread at 4:00", "time_slot": "Monday 3:30"}
    body = {"suite": "crud", "scenario_id": "baker-early", "vars": vars_1}
    created = httpx.post(url, json=body, headers=RIGHT)
    assert created.status_code == 201
    assert created.json()["version"] == 1 and created.json()["hash"] == scenario_hash(vars_1)
    twice = httpx.post(url, json=body, headers=RIGHT)
    assert twice.status_code == 409 and "update it to add a version" in twice.json()["detail"]

    vars_2 = vars_1 | {"tasks": "bread and cakes"}
    one = f"{url}/crud/baker-early"
    updated = httpx.put(one, json={"vars": vars_2}, headers=RIGHT).json()
    assert (updated["version"], updated["hash"]) == (2, scenario_hash(vars_2))
    assert httpx.get(one, headers=RIGHT).json()["vars"] == vars_2
    assert httpx.get(one, params={"version": 1}, headers=RIGHT).json()["vars"] == vars_1

    def listed(**query) -> list[tuple[str, int]]:
        reply = httpx.get(url, params={"suite": "crud", **query}, headers=RIGHT).json()
        return [(f["scenario_id"], f["version"]) for f in reply]

    assert listed() == [("baker-early", 2)]
    assert listed(history=True) == [("baker-early", 1), ("baker-early", 2)]
    assert listed(version=1) == [("baker-early", 1)]

    assert httpx.delete(one, headers=RIGHT).json() == {"deleted_versions": 2}
    assert httpx.get(one, headers=RIGHT).status_code == 404
    assert listed() == []
    assert httpx.get(one, params={"version": 1}, headers=RIGHT).json()["vars"] == vars_1
    recreated = httpx.post(url, json=body, headers=RIGHT).json()
    assert recreated["version"] == 3  # never reuses a version number

    for bad in (
        {"suite": "crud", "scenario_id": "x", "vars": {}},
        {"suite": "crud", "scenario_id": "a/b", "vars": {"k": 1}},
        {"suite": "crud", "vars": {"k": 1}},
    ):
        assert httpx.post(url, json=bad, headers=RIGHT).status_code == 422
    assert httpx.put(f"{url}/crud/ghost", json={"vars": {"k": 1}}, headers=RIGHT).status_code == 404


def test_a_run_uses_its_suites_fixtures_and_checks_their_hash(api: str, small_config: dict) -> None:
    config = small_config | {"fixtures": True, "n_scenarios": 0}
    no_fixtures = httpx.post(f"{api}/api/runs", json=config, headers=RIGHT, timeout=60)
    assert no_fixtures.status_code == 422
    assert "no fixtures are stored for suite 'tips'" in no_fixtures.json()["detail"]

    vars_ = {"persona": "a baker", "tasks": "bread at 4:00", "time_slot": "Monday 3:30"}
    fixtures.create("tips", "baker-early", vars_)
    fixtures.create("tips", "baker-late", vars_ | {"time_slot": "Friday 22:00"})
    _, cells = runs.check_run(build_config(config), "check")
    assert {cell.scenario_id for cell in cells} == {"baker-early", "baker-late"}
    assert {cell.scenario_hash for cell in cells} >= {scenario_hash(vars_)[:16]}
    fine = httpx.post(f"{api}/api/runs", json=config, headers=RIGHT, timeout=60)
    assert fine.status_code == 202

    with session() as s:  # changed behind benchlib's back
        row = s.exec(select(Fixture).where(Fixture.scenario_id == "baker-late")).one()
        row.vars = row.vars | {"tasks": "nothing"}
        s.add(row)
    tampered = httpx.post(f"{api}/api/runs", json=config, headers=RIGHT, timeout=60)
    assert tampered.status_code == 422
    assert "fixture tips/baker-late version 1: content hash" in tampered.json()["detail"]
    assert "does not match the stored hash" in tampered.json()["detail"]
    fixtures.delete("tips", "baker-early")
    fixtures.delete("tips", "baker-late")


SCHEMA = schemathesis.openapi.from_dict(APP.openapi())


@SCHEMA.parametrize()
@settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_no_server_errors_on_generated_requests(case, api: str) -> None:
    """Fixed number of examples per operation, derandomized. Model endpoints are pinned to
    loopback: generated URLs must not send traffic anywhere else."""
    if case.path == "/api/runs" and case.method == "POST" and isinstance(case.body, dict):
        case.body.update(openai_base_url="http://127.0.0.1:9/v1", ollama_url="http://127.0.0.1:9")
    case.call_and_validate(base_url=api, headers=RIGHT, checks=[not_a_server_error], timeout=60)


def test_runs_filter_by_provider_and_cells_come_page_by_page(api: str) -> None:
    judged_run = make_run(
        "api-crafted-cells",
        [
            {"scenario": "a", "text": "Plan the day", "scores": {"quality": [3.0]}},
            {"scenario": "b", "text": "Rest", "scores": {"quality": [1.0]}},
        ],
        experiment="crafted-cells",
    )

    def ids(**query) -> list[str]:
        return [r["id"] for r in httpx.get(f"{api}/api/runs", params=query, headers=RIGHT).json()]

    assert judged_run in ids(provider="openai")
    # `_` would be a LIKE wildcard matching "openai" if the prefix were not escaped.
    assert judged_run not in ids(provider="ollama") + ids(provider="open_i")

    first = httpx.get(f"{api}/api/runs/{judged_run}/cells?limit=1", headers=RIGHT).json()
    second = httpx.get(f"{api}/api/runs/{judged_run}/cells?offset=1&limit=1", headers=RIGHT)
    assert (first["total"], first["offset"], first["limit"]) == (2, 0, 1)
    cells = first["cells"] + second.json()["cells"]
    assert [c["scenario_id"] for c in cells] == ["a", "b"]
    assert [c["model"] for c in cells] == ["openai:m"] * 2
    candidate = cells[0]["candidates"][0]
    assert candidate["text"] == "Plan the day" and candidate["scores"] == {"quality": 3.0}
    assert httpx.get(f"{api}/api/runs/nope/cells", headers=RIGHT).status_code == 404


def test_a_comma_separated_models_string_is_a_list(api: str) -> None:
    reply = httpx.post(
        f"{api}/api/runs", json={"models": "openai:m,bogus:x"}, headers=RIGHT, timeout=60
    )
    assert reply.status_code == 422 and "unknown provider 'bogus'" in reply.json()["detail"]


def test_the_runs_page_filters_shows_progress_and_links(
    api: str, judged_run: str, prefect_api: str
) -> None:
    with session() as s:
        run = s.get(Run, judged_run)
        run.flow_run_id = "0b7c1a1e-0000-4000-8000-000000000001"
        run.mlflow_run_id = "4f0c9e"
        run.config = run.config | {"mlflow_url": "http://mlflow.test:5000"}
        s.add(run)
    page = httpx.get(f"{api}/", params={"experiment": "crafted-api"}, headers=RIGHT).text
    assert judged_run in page and "2/2 cells" in page
    ui = prefect_api.removesuffix("/api")
    assert f"{ui}/runs/flow-run/0b7c1a1e-0000-4000-8000-000000000001" in page
    assert 'href="http://mlflow.test:5000/#/runs/4f0c9e">MLflow</a>' in page
    assert "location.reload()" in page  # auto-refresh
    elsewhere = httpx.get(f"{api}/", params={"experiment": "crafted-api", "status": "failed"})
    assert elsewhere.status_code == 303  # a page: no token, the login form
    filtered = httpx.get(f"{api}/", params={"status": "failed"}, headers=RIGHT).text
    assert judged_run not in filtered
    unknown = httpx.get(f"{api}/", params={"status": "nonsense"}, headers=RIGHT)
    assert unknown.status_code == 200 and "no runs match these filters" in unknown.text


def test_an_unknown_run_is_a_page_and_the_login_box_is_labelled(api: str) -> None:
    for path in ("/runs/nope/judge", "/runs/nope/leaderboard"):
        reply = httpx.get(f"{api}{path}", headers=RIGHT)
        assert reply.status_code == 404 and reply.headers["content-type"].startswith("text/html")
        assert "no run &#39;nope&#39;" in reply.text and '<a href="/">All runs</a>' in reply.text
    login = httpx.get(f"{api}/login").text
    assert '<label for="token">' in login and 'id="token"' in login


@needs_chromium
def test_docs_render_without_internet(api: str) -> None:
    """Swagger UI comes from this server: every request elsewhere is refused."""
    from playwright.sync_api import sync_playwright

    elsewhere: list[str] = []

    def only_loopback(route) -> None:
        if route.request.url.startswith(api):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page()
        page.route("**/*", only_loopback)
        page.goto(f"{api}/login?next=/docs")
        page.fill("#token", TOKEN)
        page.press("#token", "Enter")
        page.wait_for_url(f"{api}/docs")
        page.locator(".swagger-ui .info .title").get_by_text("benchlib admin API").wait_for()
        assert page.locator(".opblock").count() >= 10
        browser.close()
    assert elsewhere == []
