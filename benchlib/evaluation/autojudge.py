"""The model judge: a judge model scores a run's blind items with the suite's rubric.

It sees what a person sees (`benchlib.evaluation.judging.judge_items`: the scenario and the output,
never the model or the prompt that wrote it), through a versioned prompt whose hash is part of the
judge id, and the server is asked for an answer constrained to the rubric's criteria and levels.
Its judgements are ordinary Judgement rows under the judge id `model:SPEC[@DIGEST]#VERSION.HASH`,
so people and the model can be told apart (and compared: `calibration`) and never mixed
silently. Answers are cached like generation, and every HTTP attempt is in the call log.
"""

import json
import math
import random
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import jinja2
import numpy as np
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, Field
from sqlmodel import select

from benchlib.config import BenchmarkConfig, build_config
from benchlib.errors import BenchlibError
from benchlib.evaluation.judging import Item, judge_items, judgements_of, rubric_of
from benchlib.evaluation.scoring import MODEL_JUDGE_PREFIX
from benchlib.evaluation.stats import CONFIDENCE, bootstrap_mean, krippendorff_alpha
from benchlib.generation import cache
from benchlib.generation.modelspec import ModelSpec
from benchlib.generation.preflight import preflight_models
from benchlib.generation.providers import AttemptBudget, CallRecord, ChatRequest, provider_for
from benchlib.spec.hashing import content_hash
from benchlib.spec.rubric import Rubric
from benchlib.store.db import session
from benchlib.store.records import Cell, Judgement, LLMCall, Run, stored_id
from benchlib.store.runs import get_run, run_candidates, run_cells

PROMPT_VERSION = "judge-v1"
# Suite content (the rubric, the scenario) is rendered in a sandbox, as prompt versions are.
SYSTEM_TEMPLATE = """\
You are a careful judge. Score one output against the rubric below, as a trained person would.
{{ rubric.description }}

Read every level and its calibrated example before scoring. When torn between two levels, pick
the lower one. Score what is written, not what the writer might have meant.
{% for criterion in rubric.criteria %}
## {{ criterion.name }}: {{ criterion.question }}
{% for level in criterion.levels %}- {{ level.score }}: {{ level.description }}
  Example: {{ level.example }}
{% endfor %}{% endfor %}
Answer with a JSON object giving one integer level per criterion: {{ names | join(", ") }}."""
USER_TEMPLATE = """\
The situation the output answers:
{{ context }}

The output to judge:
{{ output }}"""
PROMPT_HASH = content_hash([PROMPT_VERSION, SYSTEM_TEMPLATE, USER_TEMPLATE])
MAX_TOKENS = 128
ATTEMPTS_PER_ITEM = 3

_ENV = SandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
_SYSTEM = _ENV.from_string(SYSTEM_TEMPLATE)
_USER = _ENV.from_string(USER_TEMPLATE)


def is_model_judge(judge: str) -> bool:
    return judge.startswith(MODEL_JUDGE_PREFIX)


def judge_id(spec: str, digest: str | None) -> str:
    """`model:SPEC[@DIGEST]#VERSION.HASH`: which weights judged, with which prompt."""
    weights = f"@{digest}" if digest else ""
    return f"{MODEL_JUDGE_PREFIX}{spec}{weights}#{PROMPT_VERSION}.{PROMPT_HASH}"


def response_schema(rubric: Rubric) -> dict[str, Any]:
    """Exactly the rubric's criteria, each one of its levels: what the server must emit."""
    return {
        "type": "object",
        "properties": {c.name: {"type": "integer", "enum": c.scores} for c in rubric.criteria},
        "required": [c.name for c in rubric.criteria],
        "additionalProperties": False,
    }


def judge_messages(rubric: Rubric, item: Item) -> list[dict[str, str]]:
    """The judge prompt for one item: the rubric, the scenario and the output, nothing else."""
    system = _SYSTEM.render(rubric=rubric, names=[c.name for c in rubric.criteria])
    user = _USER.render(context=json.dumps(item.context, ensure_ascii=False), output=item.output)
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def parse_answer(rubric: Rubric, text: str) -> tuple[dict[str, float] | None, str | None]:
    """(scores, None) for an answer that gives every criterion one of its levels, else (None,
    why): a server may ignore the schema, and a cut-off answer is not JSON."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"not JSON ({exc})"
    if not isinstance(data, dict):
        return None, f"expected a JSON object, got {type(data).__name__}"
    levels = {c.name: c.scores for c in rubric.criteria}
    problems = [f"unknown criterion {name!r}" for name in data if name not in levels]
    problems += [f"no score for {name!r}" for name in levels if name not in data]
    problems += [
        f"{name} = {data[name]!r} is not one of {levels[name]}"
        for name in levels
        if name in data and (type(data[name]) is not int or data[name] not in levels[name])
    ]
    if problems:
        return None, "; ".join(problems)
    return {name: float(data[name]) for name in levels}, None


def parse_sample(value: str) -> float:
    """`--sample 12` (items) or `--sample 0.25` (a fraction of them)."""
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    whole = number.is_integer() and number >= 1
    if not (whole or 0 < number < 1):
        raise BenchlibError(
            f"--sample: expected a number of items (1, 2, …) or a fraction between 0 and 1, "
            f"got {value!r}"
        )
    return number


def stratified_sample(run: Run, items: list[Item], size: float) -> list[Item]:
    """`size` items (a fraction when below 1) spread over the (model, prompt) rows first, then
    over scenarios within a row, so a few judged items calibrate every row; the same run and
    size always give the same sample, in the run's judging order."""
    count = math.ceil(size * len(items)) if size < 1 else min(int(size), len(items))
    cells = {cell.id: cell for cell in run_cells(run.id)}
    buckets: dict[tuple[str, str], dict[str, list[Item]]] = defaultdict(lambda: defaultdict(list))
    for item in items:
        cell = cells[item.cell_id]
        buckets[(cell.model, cell.prompt_version)][cell.scenario_id].append(item)
    rng = random.Random(run.config.get("seed", 0))
    rows = sorted(buckets)
    rng.shuffle(rows)
    queues = []
    for offset, row in enumerate(rows):
        scenarios = sorted(buckets[row])
        # Each row starts at another scenario: the first picks cover scenarios across rows.
        start = offset % len(scenarios)
        order = scenarios[start:] + scenarios[:start]
        queues.append([buckets[row][s] for s in order])
    picked: list[Item] = []
    while len(picked) < count:
        for queue in queues:
            for position, bucket in enumerate(queue):
                if bucket:
                    picked.append(bucket.pop(0))
                    queue.append(queue.pop(position))  # this scenario goes to the back
                    break
            if len(picked) == count:
                break
    chosen = {item.item_id for item in picked}
    return [item for item in items if item.item_id in chosen]


class AutoJudgeResult(BaseModel):
    run_id: str
    judge: str = Field(description="The judge id the judgements are recorded under.")
    items: int
    added: int
    updated: int
    unchanged: int
    failed: int = Field(description="Answers that gave no valid level for every criterion.")
    provider_calls: int = Field(description="HTTP attempts; 0 when the cache answered all.")


def judge_config(run: Run, spec: str, overrides: dict[str, Any]) -> BenchmarkConfig:
    """The run's endpoint settings with the judge model in place of the run's models; the
    run's cache settings were for generation, the judge's own come from `overrides`."""
    own = ("run_id", "models", "no_cache", "refresh", "judge", "judge_model")
    values = {k: v for k, v in run.config.items() if k not in own}
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        ModelSpec.parse(spec)
    except ValueError as exc:
        raise BenchlibError(f"--model: {exc}") from None
    return build_config(values | {"models": [spec]}, "judge auto")


def check_judge(run: Run, config: BenchmarkConfig, allow_self_judge: bool) -> str:
    """Refuse an unusable judge before anything is written; returns its judge id."""
    spec = config.models[0]
    judged = sorted({cell.model for cell in run_cells(run.id)})
    if spec in judged and not allow_self_judge:
        raise BenchlibError(
            f"--model {spec}: this model wrote outputs of run {run.id} (judged models: "
            f"{', '.join(judged)}); a model judging itself is biased: pick another judge, or "
            "pass --allow-self-judge to do it anyway"
        )
    info = preflight_models(config)[spec]
    return judge_id(spec, info.digest)


def judge_run(
    run_id: str,
    spec: str,
    overrides: dict[str, Any] | None = None,
    sample: float | None = None,
    allow_self_judge: bool = False,
    max_tokens: int = MAX_TOKENS,
    on_item: Callable[[Item], None] | None = None,
) -> AutoJudgeResult:
    """Judge the run's blind items (or a stratified sample) with `spec`. Each item's judgement
    is written with its calls in one transaction, so an interrupted run loses nothing; a second
    run answers from the cache and changes nothing."""
    run = get_run(run_id)
    rubric = rubric_of(run)
    config = judge_config(run, spec, overrides or {})
    judge = check_judge(run, config, allow_self_judge)
    items = judge_items(run)
    if sample is not None:
        items = stratified_sample(run, items, sample)
    provider = provider_for(config.model_specs[0], config)
    digest = judge.split("@", 1)[1].split("#", 1)[0] if "@" in judge else None
    cells = {cell.id: cell for cell in run_cells(run.id)}
    counts: dict[str, int] = defaultdict(int)
    try:
        for item in items:
            request = ChatRequest(
                messages=judge_messages(rubric, item),
                temperature=0.0,
                seed=config.seed,
                max_tokens=max_tokens,
                response_schema=response_schema(rubric),
            )
            key = cache.cache_key(spec, digest, request, 0)
            result = cache.lookup(key) if config.cache_mode == "use" else None
            attempts: list[CallRecord] = []
            if result is None:
                provider.load()
                try:
                    result = provider.chat(
                        request, AttemptBudget(ATTEMPTS_PER_ITEM, config.max_backoff_s), attempts
                    )
                finally:
                    counts["calls"] += len(attempts)
                    _log_calls(run, cells[item.cell_id], item, spec, attempts)
                if config.cache_mode != "off":
                    cache.store(key, spec, request, result)
            scores, problem = parse_answer(rubric, result.text)
            comment = f"malformed judge answer: {problem}; raw answer: {result.text!r}"
            counts[_record(run, rubric, judge, item, scores or {}, "" if scores else comment)] += 1
            counts["failed"] += scores is None
            if on_item:
                on_item(item)
    finally:
        provider.unload()
    return AutoJudgeResult(
        run_id=run.id,
        judge=judge,
        items=len(items),
        added=counts["added"],
        updated=counts["updated"],
        unchanged=counts["unchanged"],
        failed=counts["failed"],
        provider_calls=counts["calls"],
    )


def _log_calls(run: Run, cell: Cell, item: Item, spec: str, attempts: list[CallRecord]) -> None:
    with session() as s:
        s.add_all(
            LLMCall(
                run_id=run.id,
                cell_id=cell.id,
                candidate_index=0,
                step="judge",
                model=spec,
                **record.model_dump(),
            )
            for record in attempts
        )


def _record(
    run: Run, rubric: Rubric, judge: str, item: Item, scores: dict[str, float], comment: str
) -> str:
    """Insert or update this judge's judgement of the item; says which it did."""
    with session() as s:
        query = select(Judgement).where(
            Judgement.run_id == run.id,
            Judgement.judge == judge,
            Judgement.candidate_id == item.candidate_id,
        )
        previous = s.exec(query).first()
        if previous is None:
            s.add(
                Judgement(
                    run_id=run.id,
                    candidate_id=item.candidate_id,
                    judge=judge,
                    rubric_version=rubric.version,
                    rubric_hash=rubric.hash,
                    scores=scores,
                    comment=comment,
                )
            )
            return "added"
        if previous.scores == scores and previous.comment == comment:
            return "unchanged"
        previous.scores, previous.comment = scores, comment
        s.add(previous)
        return "updated"


# Calibration: the model judge against people, on the items both judged.


class CriterionAgreement(BaseModel):
    criterion: str
    items: int = Field(description="Items people and the model both scored on this criterion.")
    scenarios: int
    alpha: float | None = Field(
        description="Krippendorff's alpha (interval) between the people's mean and the model; "
        "None when there is nothing to compare."
    )
    bias: float | None = Field(description="Mean of model − people over scenarios.")
    bias_low: float | None
    bias_high: float | None
    thin: bool = Field(description="Fewer than MIN_SCENARIOS scenarios: read with care.")


class JudgeAgreement(BaseModel):
    model_judge: str
    people: list[str] = Field(description="Judge ids of the people compared with.")
    items: int = Field(description="Items people and this model judge both judged.")
    criteria: list[CriterionAgreement]


class Agreement(BaseModel):
    run_id: str
    rubric_version: str
    confidence: float
    judges: list[JudgeAgreement] = Field(description="One entry per model judge of the run.")


MIN_SCENARIOS = 5


def calibration(run_id: str) -> Agreement:
    """Per model judge and criterion: agreement with people (alpha) and bias (mean difference,
    bootstrap interval over scenarios, the unit the leaderboard resamples too)."""
    run = get_run(run_id)
    rubric = rubric_of(run)
    judgements = [j for j in judgements_of(run.id) if j.rubric_hash == rubric.hash and j.scores]
    people = [j for j in judgements if not is_model_judge(j.judge)]
    scenario_of = _scenario_of_candidates(run.id)
    by_model: dict[str, list[Judgement]] = defaultdict(list)
    for j in judgements:
        if is_model_judge(j.judge):
            by_model[j.judge].append(j)
    result = []
    for model_judge, theirs in sorted(by_model.items()):
        model_scores = {j.candidate_id: j.scores for j in theirs}
        shared = {j.candidate_id for j in people} & set(model_scores)
        criteria = [
            _criterion_agreement(
                name,
                [j for j in people if j.candidate_id in shared],
                model_scores,
                scenario_of,
                run.config.get("seed", 0),
            )
            for name in (c.name for c in rubric.criteria)
        ]
        result.append(
            JudgeAgreement(
                model_judge=model_judge,
                people=sorted({j.judge for j in people if j.candidate_id in shared}),
                items=len(shared),
                criteria=criteria,
            )
        )
    return Agreement(
        run_id=run.id, rubric_version=rubric.version, confidence=CONFIDENCE, judges=result
    )


def _scenario_of_candidates(run_id: str) -> dict[int, str]:
    cells = {cell.id: cell.scenario_id for cell in run_cells(run_id)}
    return {stored_id(c): cells[c.cell_id] for c in run_candidates(run_id)}


def _criterion_agreement(
    name: str,
    people: list[Judgement],
    model_scores: dict[int, dict[str, float]],
    scenario_of: dict[int, str],
    seed: int,
) -> CriterionAgreement:
    human: dict[int, list[float]] = defaultdict(list)
    for j in people:
        if name in j.scores:
            human[j.candidate_id].append(j.scores[name])
    items = sorted(c for c in human if name in model_scores[c])
    people_mean = np.array([np.mean(human[c]) for c in items])
    model = np.array([model_scores[c][name] for c in items])
    per_scenario: dict[str, list[float]] = defaultdict(list)
    for candidate, difference in zip(items, model - people_mean, strict=True):
        per_scenario[scenario_of[candidate]].append(float(difference))
    alpha = krippendorff_alpha(np.vstack([people_mean, model])) if items else None
    bias = (
        bootstrap_mean(np.array([np.mean(v) for v in per_scenario.values()]), seed)
        if per_scenario
        else None
    )
    return CriterionAgreement(
        criterion=name,
        items=len(items),
        scenarios=len(per_scenario),
        alpha=alpha,
        bias=bias.mean if bias else None,
        bias_low=bias.low if bias else None,
        bias_high=bias.high if bias else None,
        thin=len(per_scenario) < MIN_SCENARIOS,
    )
