"""Security, tried as an attacker would: template payloads in a suite, a token holder pointing
the API at an "attacker" loopback server to make it send secrets or read content back, a web
page driving `benchlib api --demo` (cross-site POST, DNS rebinding), and request bodies meant
to cost the API its memory or a 500. Real components throughout: the suite loader and the
sandbox, the API on a real uvicorn server (in a subprocess where its memory is measured), real
HTTP servers on loopback."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jinja2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jinja2.sandbox import SecurityError
from pydantic import ValidationError

from benchlib.api.app import create_app
from benchlib.api.settings import ApiSettings
from benchlib.config import build_config
from benchlib.errors import BenchlibError
from benchlib.generation.providers.local import free_port
from benchlib.spec.suite import _JINJA, Step, load_suite
from benchlib.store import runs
from tests.conftest import ROOT, TIPS
from tests.support.cli import benchlib
from tests.support.crafted import make_run
from tests.support.servers import make_attacker_app, serve_app

TOKEN = "security-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SECRET_ENV = "BENCHLIB_TEST_SECRET"
SECRET = "sk-server-side-secret-do-not-send"
LEAKED = "remote-content-must-not-be-echoed"


# --- Templates ---------------------------------------------------------------------------


def payload(marker: Path) -> str:
    return f"{{{{ cycler.__init__.__globals__.os.popen('touch {marker}').read() }}}}"


def test_a_suite_with_a_code_payload_is_refused_at_load_with_file_and_line(
    suite_copy: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    version = suite_copy / "versions" / "v1.yaml"
    version.write_text(f'system: "You help."\nuser: "{{{{ persona }}}} {payload(marker)}"\n')
    before = len(runs.list_runs(1000))
    refused = benchlib("run", str(suite_copy), "--n-scenarios", "1")
    assert refused.returncode == 2, refused.stderr
    assert f"{version}:" in refused.stderr and "unsafe template" in refused.stderr
    assert "'__init__' at line 1 of the template" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not marker.exists()
    assert len(runs.list_runs(1000)) == before


def test_walking_pythons_classes_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"unsafe template: reads '__class__'.*'__mro__'"):
        Step(user="{{ ''.__class__.__mro__ }}")
    # Passed the load check (no constant name), the sandbox refuses at render time.
    template = _JINJA.from_string("{{ (x|attr(a)|attr(b)).os.popen(cmd).read() }}")
    marker = tmp_path / "ran"
    context = {"x": "", "a": "__init__", "b": "__globals__", "cmd": f"touch {marker}"}
    with pytest.raises(jinja2.TemplateRuntimeError):
        template.render(context)
    with pytest.raises(SecurityError, match="access to attribute '__init__' of 'str'"):
        _JINJA.from_string("{{ x|attr(a) }}").render(context)
    with pytest.raises(SecurityError):
        _JINJA.from_string("{{ 'x' * 10 ** 9 }}").render()
    assert not marker.exists()


BASES = ["cycler", "joiner", "namespace", "lipsum", "range", "''", "[]", "{}", "x", "self"]
DUNDERS = ["__class__", "__init__", "__globals__", "__mro__", "__subclasses__", "__builtins__"]
DUNDERS += ["__dict__", "_private", "__import__", "__getattribute__"]


@st.composite
def payloads(draw: st.DrawFn) -> str:
    expression = draw(st.sampled_from(BASES))
    for name in draw(st.lists(st.sampled_from(DUNDERS), min_size=1, max_size=4)):
        style = draw(st.sampled_from([".{}", "['{}']", '["{}"]', "|attr('{}')"]))
        expression = f"({expression}{style.format(name)})"
    tail = draw(st.sampled_from([".os.popen(cmd).read()", "", "()", "[1]", ".mro()"]))
    wrap = draw(
        st.sampled_from(["{{{{ {} }}}}", "{{% if {} %}}y{{% endif %}}", "{{% set z = {} %}}"])
    )
    return wrap.format(expression + tail)


@given(template=payloads())
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
def test_generated_payloads_never_load_and_never_run(template: str, tmp_path_factory) -> None:
    marker = tmp_path_factory.mktemp("payload") / "ran"
    with pytest.raises(ValidationError, match="unsafe template"):
        Step(user=template)
    # Rendered without the load check, the sandbox stops it.
    context = {"x": "a", "cmd": f"touch {marker}"}
    try:
        shown = _JINJA.from_string(template).render(context)
    except (jinja2.TemplateRuntimeError, TypeError):
        shown = ""
    assert not marker.exists()
    assert "<class" not in shown and "function" not in shown and "module" not in shown


def test_the_tips_suite_still_loads_and_renders() -> None:
    suite = load_suite(TIPS)
    version = next(iter(suite.versions.values()))
    messages = version.steps[0].render({**suite.scenarios[0].vars, "steps": {}})
    assert messages[-1]["content"]


# --- The API: suites, endpoints, secrets ---------------------------------------------------


@pytest.fixture(scope="module")
def attacker() -> Iterator[tuple[str, list]]:
    app, seen = make_attacker_app([f"{LEAKED}-a", f"{LEAKED}-b"])
    with serve_app(app, "/health") as url:
        seen.clear()
        yield f"{url}/v1", seen


@pytest.fixture(scope="module")
def suite_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("suite-root")
    shutil.copytree(TIPS, root / "tips")
    outside = tmp_path_factory.mktemp("outside")
    shutil.copytree(TIPS, outside / "tips")
    (root / "link").symlink_to(outside / "tips")
    unsafe = root / "unsafe"
    shutil.copytree(TIPS, unsafe)
    return root


@pytest.fixture(scope="module")
def api(attacker: tuple[str, list], suite_root: Path) -> Iterator[str]:
    """The API with the attacker's URL allowed as an endpoint (as an operator might allow a
    server that turns bad) and an unreachable Prefect: anything the old code did before
    asking Prefect, it does here."""
    os.environ[SECRET_ENV] = SECRET
    settings = ApiSettings(
        token=TOKEN,
        prefect_api_url="http://127.0.0.1:9/api",
        suite_roots=[ROOT / "prompts", suite_root],
        allowed_endpoints=[attacker[0]],
    )
    with serve_app(create_app(settings), "/api/health") as url:
        yield url
    os.environ.pop(SECRET_ENV)


def post_run(api: str, body: dict) -> httpx.Response:
    return httpx.post(f"{api}/api/runs", json=body, headers=AUTH, timeout=60)


def test_no_secret_leaves_for_an_endpoint_the_request_chose(
    api: str, attacker: tuple[str, list]
) -> None:
    url, seen = attacker
    elsewhere = "http://127.0.0.1:1/v1"  # not allowed: the request's own choice
    for body, field in (
        ({"openai_base_url": elsewhere, "openai_api_key_env": SECRET_ENV}, "openai_base_url"),
        ({"openai_base_url": url, "openai_api_key_env": SECRET_ENV}, "openai_api_key_env"),
        (
            {"openai_base_url": url, "openai_api_key_env": "BENCHLIB_API_TOKEN"},
            "openai_api_key_env",
        ),
        ({"ollama_url": "http://127.0.0.1:1"}, "ollama_url"),
        ({"mlflow_url": "http://127.0.0.1:1"}, "mlflow_url"),
        ({"local_models": {"x": "/etc/passwd"}}, "local_models"),
    ):
        reply = post_run(api, {"models": ["openai:m"], **body})
        assert reply.status_code == 403, reply.text
        assert reply.json()["detail"].startswith(f"{field}:")
    assert seen == []


def test_errors_do_not_read_a_remote_answer_back(api: str, attacker: tuple[str, list]) -> None:
    url, seen = attacker
    reply = post_run(api, {"models": ["openai:not-served"], "openai_base_url": url})
    assert reply.status_code == 422, reply.text
    assert "unknown model 'not-served'" in reply.json()["detail"]
    assert LEAKED not in reply.text
    assert seen and not any(seen)  # it was asked, without a key (OPENAI_API_KEY is unset)
    seen.clear()


def test_suites_are_confined_to_the_roots(
    api: str, suite_root: Path, attacker: tuple[str, list]
) -> None:
    outside = suite_root.parent / "elsewhere"
    for suite in (
        str(outside),
        "/etc",
        str(suite_root / "link"),  # a symlink out
        f"{suite_root}/../{suite_root.name}-x/tips",
        f"{suite_root}/tips/../..",
        "prompts/../tests/data",
    ):
        reply = post_run(api, {"suite": suite, "models": ["openai:m"]})
        assert reply.status_code == 403, (suite, reply.text)
        assert "outside the suite folders" in reply.json()["detail"]
    # Inside a root: checked as usual (the model the attacker does not serve stops it).
    body = {"suite": f"{suite_root}/../{suite_root.name}/tips", "openai_base_url": attacker[0]}
    inside = post_run(api, {**body, "models": ["openai:m"]})
    assert inside.status_code == 422 and "unknown model 'm'" in inside.text
    attacker[1].clear()


def test_an_unsafe_suite_inside_a_root_is_refused_before_anything_runs(
    api: str, suite_root: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    unsafe = suite_root / "unsafe"
    (unsafe / "versions" / "v1.yaml").write_text(f'user: "{payload(marker)}"\n')
    reply = post_run(api, {"suite": str(unsafe)})
    assert reply.status_code == 422, reply.text
    detail = reply.json()["detail"]
    assert f"{unsafe / 'versions' / 'v1.yaml'}" in detail and "unsafe template" in detail
    assert not marker.exists()


def test_escaping_experiment_names_are_refused() -> None:
    for name in ("../escaped", "/abs/path", "a/b", "a\\b", "..", "a\nb"):
        with pytest.raises(BenchlibError, match="experiment: expected a name without"):
            build_config({"experiment": name})
    assert build_config({"experiment": "team tips v2"}).experiment == "team tips v2"


# --- Bad requests: 4xx, never 500, nothing stored ------------------------------------------


def test_hostile_bodies_and_ids_are_refused_with_4xx(api: str) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    for path in ("/api/runs", "/api/fixtures", "/api/runs/x/judgements"):
        reply = httpx.post(
            api + path, content=deep, headers={**AUTH, "Content-Type": "application/json"}
        )
        assert reply.status_code == 422 and "nested deeper" in reply.json()["detail"], reply.text
    huge = post_run(api, {"experiment": "x" * 2_000_000})
    assert huge.status_code == 413
    long = post_run(api, {"experiment": "x" * 100_000})
    assert long.status_code == 422 and "experiment: 100000 characters" in long.json()["detail"]
    long_id = "a" * 50_000
    for path in (f"/api/runs/{long_id}", f"/api/runs/{long_id}/judging", "/api/runs/%25tl"):
        reply = httpx.get(api + path, headers=AUTH)
        assert reply.status_code == 422, (path[:40], reply.text[:200])
    listed = httpx.get(f"{api}/api/runs", params={"experiment": long_id}, headers=AUTH)
    assert listed.status_code == 422
    not_json = httpx.post(
        f"{api}/api/runs", content=b"{nope", headers={**AUTH, "Content-Type": "application/json"}
    )
    assert not_json.status_code == 422 and "not JSON" in not_json.json()["detail"]


def test_nan_and_infinity_are_not_stored_as_fixture_variables(api: str) -> None:
    for constant in ("NaN", "Infinity", "-Infinity"):
        body = '{"suite": "nan", "scenario_id": "s", "vars": {"x": {"y": [CONSTANT]}}}'
        body = body.replace("CONSTANT", constant)
        reply = httpx.post(
            f"{api}/api/fixtures",
            content=body,
            headers={**AUTH, "Content-Type": "application/json"},
        )
        assert reply.status_code == 422, reply.text
        assert "vars.x.y.0" in reply.json()["detail"] and "finite number" in reply.json()["detail"]
    assert httpx.get(f"{api}/api/fixtures", params={"suite": "nan"}, headers=AUTH).json() == []
    nan_config = httpx.post(
        f"{api}/api/runs",
        content='{"temperature": NaN}',
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert nan_config.status_code == 422 and "NaN is not a JSON number" in nan_config.text


def test_without_a_token_nothing_is_parsed(api: str) -> None:
    for body in (b"{nope", b"[" * 10_000):
        reply = httpx.post(
            f"{api}/api/fixtures", content=body, headers={"Content-Type": "application/json"}
        )
        assert reply.status_code == 401, reply.text
    text = httpx.post(
        f"{api}/api/runs", content=b"{}", headers={**AUTH, "Content-Type": "text/plain"}
    )
    assert text.status_code == 415


def test_a_short_token_stops_the_service_at_start() -> None:
    env = dict(os.environ, BENCHLIB_API_TOKEN="short")
    command = [sys.executable, "-m", "benchlib.cli", "api", "--port", "1"]
    refused = subprocess.run(
        command, env=env, capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert refused.returncode == 2
    assert "BENCHLIB_API_TOKEN: the token has 5 characters, fewer than 16" in refused.stderr
    assert "short" not in refused.stderr.replace("the token has", "")


# --- `benchlib api` in its own process: --demo from a web page, a 64 MB body ---------------


def start_api(*args: str, token: str = "") -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "BENCHLIB_API_TOKEN"}
    if token:
        env["BENCHLIB_API_TOKEN"] = token
    command = [sys.executable, "-m", "benchlib.cli", "api", "--port", str(port), *args]
    server = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            httpx.get(f"{url}/api/health")
            return server, url
        except httpx.TransportError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise RuntimeError(server.stderr.read()) from None
            time.sleep(0.3)


@pytest.fixture(scope="module")
def demo() -> Iterator[str]:
    server, url = start_api("--demo")
    yield url
    server.terminate()
    server.wait(timeout=30)


def test_a_web_page_cannot_drive_the_demo(demo: str) -> None:
    body = json.dumps({"models": ["openai:m"], "openai_base_url": "http://127.0.0.1:1/v1"})
    # What a page's <form enctype="text/plain"> or fetch(no-cors) sends: no CORS preflight.
    cross_site = httpx.post(
        f"{demo}/api/runs",
        content=body,
        headers={"Content-Type": "text/plain", "Origin": "http://evil.example"},
    )
    assert cross_site.status_code == 403, cross_site.text
    as_json = httpx.post(
        f"{demo}/api/runs",
        content=body,
        headers={"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"},
    )
    assert as_json.status_code == 403
    plain = httpx.post(f"{demo}/api/runs", content=body, headers={"Content-Type": "text/plain"})
    assert plain.status_code == 415
    # DNS rebinding: the page's own name pointed at 127.0.0.1 arrives as its Host.
    port = demo.rsplit(":", 1)[1]
    for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1.evil.example:{port}"):
        rebound = httpx.get(f"{demo}/api/experiments", headers={"Host": host})
        assert rebound.status_code == 400, host
    page = httpx.get(f"{demo}/login")
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert (
        httpx.get(f"{demo}/api/experiments", headers={"Host": f"localhost:{port}"}).status_code
        == 200
    )


def test_a_cookie_session_needs_the_csrf_token(api: str) -> None:
    from benchlib.api.auth import csrf_token

    with httpx.Client(base_url=api) as browser:
        assert browser.post("/login", data={"token": TOKEN, "next": "/"}).status_code == 303
        body = {"suite": "csrf", "scenario_id": "s", "vars": {"k": 1}}
        forged = browser.post("/api/fixtures", json=body)
        assert forged.status_code == 403 and "X-CSRF-Token" in forged.json()["detail"]
        page = browser.get(f"/runs/{make_run('security-csrf', [{'scenario': 'a'}])}/judge")
        assert page.status_code == 200 and csrf_token(TOKEN) in page.text
        fine = browser.post("/api/fixtures", json=body, headers={"X-CSRF-Token": csrf_token(TOKEN)})
        assert fine.status_code == 201, fine.text


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def send_body(url: str, size: int, headers: dict[str, str], chunked: bool = False) -> int | None:
    """POST `size` bytes to /api/fixtures on a raw socket, as an attacker streams them (with a
    Content-Length, or chunked without one); the status the server answered with, if any."""
    host, port = url.removeprefix("http://").split(":")
    if chunked:
        headers = {**headers, "Transfer-Encoding": "chunked"}
    else:
        headers = {**headers, "Content-Length": str(size)}
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = f"POST /api/fixtures HTTP/1.1\r\nHost: {host}:{port}\r\n{head}\r\n"
    data = b"[" + b" " * ((1 << 20) - 1)
    chunk = f"{len(data):x}\r\n".encode() + data + b"\r\n" if chunked else data
    status = None
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request.encode())
        sent = 0
        try:
            while sent < size:
                sock.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass  # the server hung up on the rest: what it should do
        try:
            reply = sock.recv(4096)
            status = int(reply.split()[1]) if reply else None
        except OSError:
            pass
    return status


def test_a_64_mb_unauthenticated_body_costs_the_api_no_memory() -> None:
    server, url = start_api(token=TOKEN)
    try:
        for _ in range(3):  # warm: the first requests import and allocate what they need
            httpx.post(
                f"{url}/api/fixtures", content=b"{}", headers={"Content-Type": "application/json"}
            )
        before = rss_kb(server.pid)
        size = 64 << 20
        json_type = {"Content-Type": "application/json"}
        status = send_body(url, size, json_type)
        chunked = send_body(url, size, {**json_type, **AUTH}, chunked=True)
        grown_mb = (rss_kb(server.pid) - before) / 1024
        assert (status, chunked) == (401, 413)
        assert grown_mb < 30, f"the API grew by {grown_mb:.0f} MB"
        # Told the size up front, with the token: refused before reading.
        too_big = httpx.post(
            f"{url}/api/fixtures",
            content=b"[" + b" " * (2 << 20) + b"]",
            headers={**AUTH, "Content-Type": "application/json"},
        )
        assert (
            too_big.status_code == 413 and "larger than 1048576 bytes" in too_big.json()["detail"]
        )
        malformed = httpx.post(
            f"{url}/api/fixtures", content=b"{nope", headers={"Content-Type": "application/json"}
        )
        assert malformed.status_code == 401
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_operator_sets_the_policy_in_the_environment(monkeypatch, tmp_path: Path) -> None:
    from benchlib.api import settings as api_settings

    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("BENCHLIB_API_TOKEN", TOKEN)
    monkeypatch.setenv(
        api_settings.SUITE_ROOTS_ENV, f"{tmp_path / 'a'}{os.pathsep}{tmp_path / 'b'}"
    )
    monkeypatch.setenv(api_settings.ENDPOINTS_ENV, "http://vllm:8000/v1, http://ollama:11434")
    monkeypatch.setenv(api_settings.KEY_ENVS_ENV, "VLLM_KEY")
    monkeypatch.setenv(api_settings.MAX_BODY_ENV, "4096")
    found = ApiSettings.from_env(host="api.internal")
    assert found.suite_roots == [ROOT / "prompts", tmp_path / "a", tmp_path / "b"]
    assert found.allowed_endpoints == ["http://vllm:8000/v1", "http://ollama:11434"]
    assert (found.allowed_key_envs, found.max_body_bytes) == (["VLLM_KEY"], 4096)
    assert found.allowed_hosts == [*api_settings.LOOPBACK_HOSTS, "api.internal"]
    assert ApiSettings.from_env(host="0.0.0.0").allowed_hosts == api_settings.LOOPBACK_HOSTS
    monkeypatch.setenv(api_settings.HOSTS_ENV, "api.example.org")
    assert ApiSettings.from_env(host="0.0.0.0").allowed_hosts == ["api.example.org"]
    monkeypatch.setenv(api_settings.MAX_BODY_ENV, "lots")
    with pytest.raises(BenchlibError, match="max_body_bytes"):
        ApiSettings.from_env()
