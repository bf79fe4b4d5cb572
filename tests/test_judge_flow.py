"""The judge step for real: the deployment served from a subprocess on a real Prefect server,
suspended until judgements are in, resumed through Prefect's API and our CLI."""

import httpx
import pytest
from prefect import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.deployments import run_deployment
from sqlmodel import select

from benchlib.errors import BenchlibError
from benchlib.evaluation import judging
from benchlib.pipeline.orchestration import resume_flow_run
from benchlib.store import runs
from benchlib.store.db import session
from benchlib.store.records import LLMCall, RunStatus, Score
from tests.support.cli import benchlib
from tests.support.prefect import run_of, serve_deployment, wait_for

DEPLOYMENT = "benchmark/judge-test"


def rejections(flow_run_id) -> int:
    """Warnings about rejected inline judgements in the flow run's log so far."""
    with get_client(sync_client=True) as client:
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    return sum("inline judgements rejected" in log.message for log in logs)


@pytest.fixture(scope="module")
def served(prefect_api: str, tmp_path_factory: pytest.TempPathFactory):
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with serve_deployment(prefect_api, DEPLOYMENT.split("/")[1], log):
        yield prefect_api


def test_deployment_suspends_for_judges_and_resumes(served: str, small_config: dict, tmp_path):
    parameters = small_config | {"prompts": ["v2-mentor"], "judge": "human"}
    flow_run = run_deployment(DEPLOYMENT, parameters=parameters, timeout=0)
    wait_for(flow_run.id, lambda s: s.is_paused())
    run = runs.get_run(run_of(flow_run.id))
    assert run.status == RunStatus.awaiting_judge
    items = judging.pending_items(run)
    assert len(items) == 2 * 2  # 2 scenarios × 2 candidates, blind
    with get_client(sync_client=True) as client:
        inputs = client.read_flow_run(flow_run.id)
    assert inputs.state.is_paused()

    # Invalid input: rejected by the server, the run stays suspended.
    reply = httpx.post(
        f"{served}/flow_runs/{flow_run.id}/resume", json={"run_input": {"approve": "maybe"}}
    ).json()
    assert reply["status"] == "REJECT"
    with pytest.raises(BenchlibError, match="rejected the resume"):
        resume_flow_run(str(flow_run.id), {"approve": "maybe"})
    assert wait_for(flow_run.id, lambda s: s.is_paused())

    # Inline scores for one item, without approving: recorded, then suspended again.
    first = items[0].item_id
    scores = {first: {"relevance": 4, "actionability": 4, "tone": 5}}
    resume_flow_run(str(flow_run.id), {"judge": "ann", "scores": scores, "approve": False})
    wait_for(flow_run.id, lambda s: s.is_paused() and len(judging.pending_items(run)) == 3)
    assert runs.get_run(run.id).status == RunStatus.awaiting_judge  # suspended again

    # Inline scores with a problem: reported in the log once, not on every later replay.
    bad = {"i-nope": {"relevance": 4, "actionability": 4, "tone": 5}}
    resume_flow_run(str(flow_run.id), {"judge": "ann", "scores": bad, "approve": False})
    wait_for(flow_run.id, lambda s: s.is_paused() and rejections(flow_run.id) == 1)

    # The rest through a judge file; apply --resume continues the run.
    exported = tmp_path / "judge.json"
    exported_ok = benchlib("judge", "export", run.id, "--out", str(exported), prefect_api=served)
    assert exported_ok.returncode == 0
    judge_file = judging.parse_file(exported.read_text(), "judge.json")
    judge_file.judge = "bob"
    for item in judge_file.items:
        item.scores = {"relevance": 3, "actionability": 2, "tone": 4}
    exported.write_text(judge_file.model_dump_json())
    applied = benchlib("judge", "apply", str(exported), "--resume", prefect_api=served)
    assert applied.returncode == 0, applied.stderr
    assert "3 added" in applied.stdout and "resumed flow run" in applied.stdout  # unjudged only
    wait_for(flow_run.id, lambda s: s.is_completed())
    assert rejections(flow_run.id) == 1  # the replays after resume did not repeat it

    run = runs.get_run(run.id)
    assert run.status == RunStatus.completed
    assert run.leaderboard["metric"] == "composite"
    assert run.leaderboard["rows"][0]["judge_coverage"] == 1.0
    with session() as s:
        calls = s.exec(select(LLMCall).where(LLMCall.run_id == run.id)).all()
        composites = s.exec(
            select(Score).where(Score.run_id == run.id, Score.name == "composite")
        ).all()
    assert len(calls) == 4  # resumed three times, no cell generated again
    assert len(composites) == 4
    nothing_waits = benchlib("judge", "resume", run.id, prefect_api=served)
    assert nothing_waits.returncode == 2 and "not waiting for judges" in nothing_waits.stderr
