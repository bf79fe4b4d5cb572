"""The judge step: suspend the benchmark (no worker, no GPU held) until people have judged.

Each round suspends under a fixed key, so when the resumed flow replays from the top, earlier
rounds return their recorded input instead of suspending again.
"""

import itertools
from datetime import UTC, datetime
from typing import Literal

from prefect import get_run_logger
from prefect.flow_runs import suspend_flow_run
from prefect.input import RunInput
from pydantic import Field

from benchlib.evaluation import judging, pairwise
from benchlib.pipeline import prefect_views
from benchlib.store.records import RunStatus
from benchlib.store.runs import get_run
from tasks.benchmark import announce_judging, apply_inline_scores, mark_run


class JudgeDecision(RunInput):
    approve: bool = Field(
        False, description="Judging is done: continue with the judgements recorded so far."
    )
    judge: str = Field("", description="Your name or id (needed for scores given below).")
    scores: dict[str, dict[str, judging.Level]] = Field(
        default_factory=dict,
        description='Inline scores for small runs: {"ITEM_ID": {"CRITERION": LEVEL}}.',
    )
    choices: dict[str, Literal["a", "b", "tie"]] = Field(
        default_factory=dict,
        description='Pairwise runs: {"PAIR_ID": "a"} (a, b or tie) for small runs.',
    )


def await_judgements(run_id: str, timeout_s: int) -> None:
    logger = get_run_logger()
    last_problem = ""
    for round_ in itertools.count():
        run = get_run(run_id)
        left = pairwise.unjudged(run)
        if not left:
            logger.info("every item is judged")
            return
        mark_run(run_id, RunStatus.awaiting_judge)
        announce_judging(run_id, round_)
        description = prefect_views.form_description(run, datetime.now(UTC), last_problem)
        decision = suspend_flow_run(
            wait_for_input=JudgeDecision.with_initial_data(description=description),
            key=f"judge-{round_}",
            timeout=timeout_s,
        )
        last_problem = ""
        if decision.scores or decision.choices:
            last_problem = (
                apply_inline_scores(
                    run_id, round_, decision.judge, decision.scores, decision.choices
                )
                or ""
            )
        if decision.approve and not last_problem:
            logger.info(f"judging approved with {left} unjudged")
            return
