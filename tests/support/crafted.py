"""Runs written straight into the real database, with the scores a test needs, so the
verdict rules can be checked on exact numbers."""

from datetime import timedelta
from typing import Any

from benchlib.spec.hashing import content_hash
from benchlib.spec.suite import load_suite
from benchlib.store.db import session
from benchlib.store.records import Candidate, Cell, CellStatus, Run, RunStatus, Score, utcnow
from tests.conftest import TIPS


def make_run(
    run_id: str,
    cells: list[dict[str, Any]],
    age_s: int = 0,
    experiment="crafted",
    rank_on: str = "final",
) -> str:
    """cells: {scenario, prompt="v1", scores={name: [value per candidate]}, ...overrides (model,
    prompt_hash, scenario_hash...: a cell's identity is their content hash)}; a chain's cell
    gives `steps={step: {name: [value per candidate]}}` (in chain order) instead of `scores`,
    and `errors={step: why}` for steps that did not run; `latency=1.0`, `cached=False` for
    every output of the cell."""
    with session() as s:
        s.add(
            Run(
                id=run_id,
                suite="tips",
                experiment=experiment,
                config={"suite": "prompts/tips", "seed": 7},
                rubric=load_suite(TIPS).rubric.model_dump(mode="json"),
                rank_on=rank_on,
                status=RunStatus.completed,
                n_cells=len(cells),
                created_at=utcnow() - timedelta(seconds=age_s),
            )
        )
        s.flush()
        for index, spec in enumerate(cells):
            cell_id = f"{run_id}-{index:04d}"
            steps = spec.get("steps", {"output": spec.get("scores", {})})
            content = {
                "model": spec.get("model", "openai:m"),
                "model_digest": spec.get("model_digest"),
                "prompt_version": spec.get("prompt", "v1"),
                "prompt_hash": spec.get("prompt_hash", "p"),
                "scenario_id": spec["scenario"],
                "scenario_hash": spec.get("scenario_hash", "s"),
                "rubric_version": "tip-v1",
                "rubric_hash": "r",
                "params": {"temperature": 0},
            }
            s.add(
                Cell(
                    id=cell_id,
                    run_id=run_id,
                    index=index,
                    **content,
                    identity=content_hash(content),  # content-addressed, as a planned cell's
                    scenario_vars={},
                    steps=list(steps),
                    status=spec.get("status", CellStatus.completed),
                )
            )
            s.flush()
            for step_index, (step, scores) in enumerate(steps.items()):
                n = max((len(v) for v in scores.values()), default=1)
                for i in range(n):
                    text = spec.get("text", "same")
                    candidate = Candidate(
                        run_id=run_id,
                        cell_id=cell_id,
                        index=i,
                        step=step,
                        step_index=step_index,
                        error=spec.get("errors", {}).get(step),
                        seed=i,
                        messages=[],
                        text=text,
                        output_hash=content_hash(text),
                        latency_s=spec.get("latency", 1.0),
                        cached=spec.get("cached", False),
                    )
                    s.add(candidate)
                    s.flush()
                    for name, values in scores.items():
                        if values[i] is None:  # this output has no such score
                            continue
                        s.add(
                            Score(
                                run_id=run_id,
                                cell_id=cell_id,
                                candidate_id=candidate.id,
                                name=name,
                                value=values[i],
                                version="t",
                            )
                        )
    return run_id
