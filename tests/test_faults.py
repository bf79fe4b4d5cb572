"""Provider faults through the real flow: the fault proxy in front of the embedded model."""

from sqlmodel import select

from benchlib.config import build_config
from benchlib.store import runs
from benchlib.store.db import session
from benchlib.store.records import LLMCall, RunStatus, Score
from flows.benchmark import benchmark
from tests.support.faults import GARBAGE_TEXT, Fault, fault_proxy, http_error


def test_faults_are_retried_a_cell_fails_alone_and_garbage_is_scored(
    prefect_api: str, small_config: dict, llm_url: str
) -> None:
    """Three cells, one candidate each, 3 provider calls per cell at most:
    1. 503, 429, 500: the budget runs out, the cell fails with the reason;
    2. 503, a reset connection, then an answer that is prose, not the JSON asked: a candidate;
    3. a slow answer: fine."""
    schedule = [
        http_error(503),
        http_error(429, retry_after="0"),
        http_error(500),
        http_error(503),
        Fault("reset"),
        Fault("garbage"),
        Fault("slow", seconds=1),
    ]
    with fault_proxy(llm_url, schedule) as proxy:
        values = small_config | {
            "openai_base_url": f"{proxy.url}/v1",
            "prompts": ["v2-mentor"],
            "n_scenarios": 3,
            "n_candidates": 1,
            "max_attempts_per_cell": 3,
            "max_backoff_s": 1.0,
        }
        run_id = benchmark(**build_config(values).model_dump())["run_id"]
    assert proxy.seen == 7 and proxy.forwarded == 2 and not proxy.schedule

    run = runs.get_run(run_id)
    assert run.status == RunStatus.completed_with_failures and run.error == "1 of 3 cells failed"
    cells = runs.run_cells(run_id)
    assert [c.status for c in cells] == ["failed", "completed", "completed"]
    assert "attempt budget exhausted: 3 provider calls" in cells[0].error

    with session() as s:
        calls = s.exec(select(LLMCall).where(LLMCall.run_id == run_id)).all()
        scores = s.exec(select(Score).where(Score.run_id == run_id)).all()
    attempts = [[(x.attempt, x.status_code) for x in calls if x.cell_id == c.id] for c in cells]
    assert attempts == [[(1, 503), (2, 429), (3, 500)], [(1, 503), (2, None), (3, 200)], [(1, 200)]]

    garbage = next(c for c in runs.run_candidates(run_id) if c.cell_id == cells[1].id)
    assert garbage.text == GARBAGE_TEXT and garbage.parsed is None and garbage.parse_error
    garbage_scores = {s.name: s.value for s in scores if s.candidate_id == garbage.id}
    assert garbage_scores["format_ok"] == 0 and garbage_scores["schema_validity"] == 0

    [row] = run.leaderboard["rows"]
    assert row["failed_cells"] == 1 and row["failure_rate"] == 1 / 3
