"""Real components for the tests: the embedded model on loopback, a Prefect server, MLflow on
sqlite, and a private benchlib home so nothing touches the developer's .benchlib/."""

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchlib.settings import PREFECT_SERVER_ENV

ROOT = Path(__file__).resolve().parent.parent
TIPS = ROOT / "prompts" / "tips"
# Fixtures that start the model or a server. A test that needs one, directly or through another
# fixture, is marked `slow`: `make test-fast` (`-m "not slow"`) runs the rest in minutes.
SLOW_FIXTURES = frozenset(
    {"llm_url", "prefect_api", "ollama_server", "mlflow_server", "instant_url", "pool_api", "stack"}
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str | None]:
    """`BENCHLIB_TEST_DATABASE=postgresql`: the session's database is on a private PostgreSQL
    cluster (the URL of its `postgres` database); otherwise None and SQLite, the default."""
    backend = os.environ.get("BENCHLIB_TEST_DATABASE", "sqlite")
    if backend == "sqlite":
        yield None
        return
    if backend != "postgresql":
        raise pytest.UsageError(
            f"BENCHLIB_TEST_DATABASE={backend!r}: expected sqlite or postgresql"
        )
    from tests.support.postgres import postgres_cluster

    with postgres_cluster() as url:
        yield url


@pytest.fixture(scope="session", autouse=True)
def benchlib_home(
    tmp_path_factory: pytest.TempPathFactory, postgres_url: str | None
) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("benchlib-home")
    saved = dict(os.environ)
    os.environ["BENCHLIB_HOME"] = str(home)
    if postgres_url:
        from tests.support.postgres import create_database

        os.environ["BENCHLIB_DATABASE_URL"] = create_database(postgres_url, "benchlib")
    os.environ.update(PREFECT_SERVER_ENV)  # the stack's settings for the test servers
    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))
    yield home
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def fresh_database_url(tmp_path: Path, postgres_url: str | None) -> str:
    """An empty database of the session's kind, for tests about creating and migrating one."""
    if postgres_url:
        from tests.support.postgres import create_database

        return create_database(postgres_url, f"fresh_{uuid.uuid4().hex[:12]}")
    return f"sqlite:///{tmp_path / 'benchlib.store.db'}"


@pytest.fixture(scope="session")
def llm_url() -> Iterator[str]:
    """The embedded SmolLM2 served by llama.cpp on 127.0.0.1 (alias `smollm2`), one thread: on a
    shared 2-core machine two llama.cpp threads fighting other processes run >20× slower."""
    from benchlib.generation.providers.local import LlamaServer, embedded_model_path

    server = LlamaServer(embedded_model_path(), alias="smollm2", threads=1)
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def prefect_api(benchlib_home: Path) -> Iterator[str]:
    """A real Prefect server (subprocess) with the `gpu` limit our set-up creates."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    from benchlib.pipeline.orchestration import ensure_gpu_limit

    with prefect_test_harness(server_startup_timeout=90):
        ensure_gpu_limit(1)
        yield PREFECT_API_URL.value()


@pytest.fixture(scope="session")
def ollama_server(llm_url: str):
    """A real server speaking the Ollama API in front of the embedded model, and its counters."""
    from tests.support.ollama_shim import make_ollama_app
    from tests.support.servers import serve_app

    app, state = make_ollama_app(llm_url, "smollm2:135m", n_params=134_515_008)
    with serve_app(app, "/api/version") as url:
        yield url, state


@pytest.fixture
def suite_copy(tmp_path: Path) -> Path:
    """A private copy of the tips suite, for tests that break it on purpose."""
    target = tmp_path / "tips"
    shutil.copytree(TIPS, target)
    return target


@pytest.fixture(scope="session")
def small_config(llm_url: str) -> dict:
    """2 prompt versions × 2 scenarios × 1 model against the session's llama.cpp server, with
    the response cache off."""
    return {
        "suite": str(TIPS),
        "models": ["openai:smollm2"],
        "openai_base_url": f"{llm_url}/v1",
        "prompts": ["v1", "v2-mentor"],
        "n_scenarios": 2,
        "n_candidates": 2,
        "max_tokens": 96,
        # Tests count provider calls: each run generates, unless a test is about the cache.
        "no_cache": True,
    }
