"""Every candidate an MLflow trace, built from the database and written in batches.

A trace is one attempt of a cell through its chain: a root span for the candidate (inputs: the
scenario id and variables; outputs: the final output), a span per chain step (its messages and
output) and, under it, a chat-model span per provider call (messages, response, tokens,
latency, attempt, error). Its assessments are the scores: the scorers' as feedback from CODE
(`scoring-v1`, the explanation as rationale), the composites from CODE (the rubric version), and
every judge's from HUMAN (the judge id, the comment as rationale).

Ids are derived from the content's identity, not drawn at random: the trace from (run, cell,
attempt), each span from its place in the trace, each assessment from (trace, name, source).
Writing a trace again (a retried push, a replay, a resumed run, new judgements) therefore
updates it in place: MLflow merges a known trace id, span id and assessment id, it never adds a
second one. The trace info is written before its spans: MLflow's store takes a new trace ~4×
faster that way than when the spans made it first.
"""

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from mlflow.entities import AssessmentSource, Feedback, Span, SpanType, TraceInfo, TraceState
from mlflow.entities.trace_location import TraceLocation
from mlflow.tracing.client import TracingClient
from mlflow.tracing.constant import SpanAttributeKey, TraceMetadataKey, TraceTagKey
from mlflow.tracing.utils import build_otel_context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import Status, StatusCode
from sqlmodel import col, select

from benchlib.evaluation.scoring import AUTO_COMPOSITE, COMPOSITE
from benchlib.store.db import session
from benchlib.store.records import (
    Candidate,
    Cell,
    CellStatus,
    Judgement,
    LLMCall,
    Run,
    Score,
    stored_id,
)
from benchlib.tracking.outbox import group_name

LINKS_PER_CALL = 100  # MLflow links at most this many traces to a run per request
_EMPTY = Resource.get_empty()


def _number(*parts: object, hex_digits: int) -> int:
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()
    return int(digest[:hex_digits], 16) or 1


def trace_id_of(run_id: str, cell_id: str, index: int) -> str:
    return "tr-" + format(_number(run_id, cell_id, index, hex_digits=32), "032x")


def _ns(moment: datetime | None, fallback: int) -> int:
    return int(moment.timestamp() * 1e9) if moment else fallback


class _TraceBuilder:
    def __init__(self, trace_id: str) -> None:
        self.trace_id = trace_id
        self.otel_id = int(trace_id.removeprefix("tr-"), 16)
        self.spans: list[Span] = []

    def span(
        self,
        path: str,
        parent: int | None,
        name: str,
        kind: str,
        window: tuple[int, int],
        inputs: Any,
        outputs: Any,
        error: str | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> int:
        span_id = _number(self.trace_id, path, hex_digits=16)
        values = {
            SpanAttributeKey.REQUEST_ID: self.trace_id,
            SpanAttributeKey.SPAN_TYPE: kind,
            SpanAttributeKey.INPUTS: inputs,
            SpanAttributeKey.OUTPUTS: outputs,
            **(attributes or {}),
        }
        self.spans.append(
            Span(
                ReadableSpan(
                    name=name,
                    context=build_otel_context(self.otel_id, span_id),
                    parent=build_otel_context(self.otel_id, parent) if parent else None,
                    start_time=window[0],
                    end_time=max(window),
                    # MLflow keeps every span attribute JSON-encoded.
                    attributes={key: json.dumps(value) for key, value in values.items()},
                    status=Status(StatusCode.ERROR, error) if error else Status(StatusCode.OK),
                    resource=_EMPTY,
                )
            )
        )
        return span_id


class RunTraces:
    """The traces of some of a run's cells, ready to write."""

    def __init__(self) -> None:
        self.infos: list[TraceInfo] = []
        self.spans: list[Span] = []


def build(
    run: Run, cell_ids: Iterable[str] | None, experiment_id: str, group_runs: dict[str, str]
) -> RunTraces:
    """Traces of the run's finished cells (of `cell_ids`, or all), with their assessments;
    each linked to its (model, prompt) MLflow run (`group_runs`, by group name)."""
    with session() as s:
        cells_query = select(Cell).where(Cell.run_id == run.id, Cell.status != CellStatus.pending)
        if cell_ids is not None:
            cells_query = cells_query.where(col(Cell.id).in_(list(cell_ids)))
        cells = list(s.exec(cells_query.order_by(col(Cell.index))))
        wanted = [cell.id for cell in cells]
        candidates = list(
            s.exec(
                select(Candidate)
                .where(col(Candidate.cell_id).in_(wanted))
                .order_by(col(Candidate.cell_id), col(Candidate.index), col(Candidate.step_index))
            )
        )
        calls = list(
            s.exec(
                select(LLMCall)
                .where(col(LLMCall.cell_id).in_(wanted))
                .order_by(col(LLMCall.cell_id), col(LLMCall.attempt))
            )
        )
        ids = [c.id for c in candidates]
        scores = list(s.exec(select(Score).where(col(Score.candidate_id).in_(ids))))
        judgements = list(s.exec(select(Judgement).where(col(Judgement.candidate_id).in_(ids))))
    criteria = {c["name"] for c in run.rubric.get("criteria", [])}
    attempts: dict[tuple[str, int], list[Candidate]] = defaultdict(list)
    for candidate in candidates:
        attempts[(candidate.cell_id, candidate.index)].append(candidate)
    calls_of: dict[tuple[str, int, str], list[LLMCall]] = defaultdict(list)
    for call in calls:
        calls_of[(call.cell_id, call.candidate_index, call.step)].append(call)
    scores_of: dict[int, list[Score]] = defaultdict(list)
    for score in scores:
        if score.name not in criteria:  # criteria come from each judge, not their mean
            scores_of[score.candidate_id].append(score)
    judged: dict[int, list[Judgement]] = defaultdict(list)
    for judgement in judgements:
        judged[judgement.candidate_id].append(judgement)

    traces = RunTraces()
    for cell in cells:
        group = group_name(cell.model, cell.prompt_version)
        indexes = sorted({index for (cell_id, index) in attempts if cell_id == cell.id})
        for index in indexes:
            steps = attempts[(cell.id, index)]
            builder = _TraceBuilder(trace_id_of(run.id, cell.id, index))
            info = _trace(run, cell, index, steps, calls_of, builder, group_runs.get(group))
            final = steps[-1]
            info.assessments = [
                *_code_feedback(builder.trace_id, steps, scores_of),
                *_human_feedback(builder.trace_id, judged[stored_id(final)]),
            ]
            traces.infos.append(info)
            traces.spans.extend(builder.spans)
    return traces


def _trace(
    run: Run,
    cell: Cell,
    index: int,
    steps: list[Candidate],
    calls_of: dict[tuple[str, int, str], list[LLMCall]],
    builder: _TraceBuilder,
    group_run: str | None,
) -> TraceInfo:
    started = _ns(cell.started_at, 0)
    finished = _ns(cell.finished_at, started)
    final = steps[-1]
    inputs = {"scenario_id": cell.scenario_id, "variables": cell.scenario_vars}
    error = next((c.error for c in steps if c.error), None) or (
        cell.error if cell.status == CellStatus.failed else None
    )
    root = builder.span(
        "root",
        None,
        f"{cell.prompt_version} · {cell.scenario_id}",
        SpanType.CHAIN,
        (started, finished),
        inputs,
        final.text,
        error,
        {"benchlib.attempt": index, "benchlib.seed": final.seed},
    )
    for step in steps:
        step_calls = calls_of[(cell.id, index, step.step)]
        window = (
            (
                _ns(step_calls[0].started_at, started),
                max(_ns(c.started_at, started) + int(c.latency_s * 1e9) for c in step_calls),
            )
            if step_calls
            else (started, finished)
        )
        step_span = builder.span(
            f"step/{step.step}",
            root,
            step.step,
            SpanType.CHAIN,
            window,
            {"messages": step.messages},
            step.parsed if step.parsed is not None else step.text,
            step.error,
            {
                "benchlib.cached": step.cached,
                "benchlib.latency_s": step.latency_s,
                "benchlib.finish_reason": step.finish_reason,
            },
        )
        for call in step_calls:
            begin = _ns(call.started_at, started)
            builder.span(
                f"call/{step.step}/{call.attempt}",
                step_span,
                f"{cell.model} (attempt {call.attempt})",
                SpanType.CHAT_MODEL,
                (begin, begin + int(call.latency_s * 1e9)),
                call.request,
                call.response,
                call.error,
                {
                    SpanAttributeKey.CHAT_USAGE: {
                        "input_tokens": call.prompt_tokens,
                        "output_tokens": call.completion_tokens,
                        "total_tokens": call.prompt_tokens + call.completion_tokens,
                    },
                    SpanAttributeKey.MODEL: cell.model,
                    "benchlib.attempt": call.attempt,
                    "benchlib.latency_s": call.latency_s,
                    "benchlib.status_code": call.status_code,
                },
            )
    tags = {
        TraceTagKey.TRACE_NAME: f"{cell.model} · {cell.prompt_version} · {cell.scenario_id}",
        "benchlib.run_id": run.id,
        "benchlib.cell_id": cell.id,
        "benchlib.attempt": str(index),
        "model": cell.model,
        "model_digest": cell.model_digest or "",
        "prompt_version": cell.prompt_version,
        "prompt_hash": cell.prompt_hash,
        "scenario_id": cell.scenario_id,
        "scenario_hash": cell.scenario_hash,
        "rubric_version": cell.rubric_version,
        "rubric_hash": cell.rubric_hash,
    }
    metadata = {TraceMetadataKey.SOURCE_RUN: group_run} if group_run else {}
    return TraceInfo(
        trace_id=builder.trace_id,
        trace_location=TraceLocation.from_experiment_id("0"),  # set by write()
        request_time=started // 1_000_000,
        execution_duration=(finished - started) // 1_000_000,
        state=TraceState.ERROR if error else TraceState.OK,
        request_preview=json.dumps(inputs)[:1000],
        response_preview=final.text[:1000],
        trace_metadata=metadata,
        tags=tags,
    )


def _assessment_id(trace_id: str, name: str, source: str) -> str:
    return "a-" + format(_number(trace_id, name, source, hex_digits=32), "032x")


def _feedback(
    trace_id: str, name: str, value: float, rationale: str, kind: str, source_id: str
) -> Feedback:
    feedback = Feedback(
        name=name,
        value=value,
        rationale=rationale or None,
        source=AssessmentSource(source_type=kind, source_id=source_id),
        trace_id=trace_id,
    )
    feedback.assessment_id = _assessment_id(trace_id, name, f"{kind}:{source_id}")
    return feedback


def _code_feedback(
    trace_id: str, steps: list[Candidate], scores_of: dict[int, list[Score]]
) -> list[Feedback]:
    """The scorers' and the composites' values; an earlier chain step's named `step.name`."""
    final = steps[-1]
    result = []
    for step in steps:
        for score in scores_of[stored_id(step)]:
            name = score.name if step is final else f"{step.step}.{score.name}"
            why = score.explanation
            if score.name in (COMPOSITE, AUTO_COMPOSITE) and score.formula:
                why = score.formula
            result.append(_feedback(trace_id, name, score.value, why, "CODE", score.version))
    return result


def _human_feedback(trace_id: str, judgements: list[Judgement]) -> list[Feedback]:
    return [
        _feedback(trace_id, name, value, judgement.comment, "HUMAN", judgement.judge)
        for judgement in judgements
        for name, value in judgement.scores.items()
    ]


def write(uri: str, experiment_id: str, traces: RunTraces) -> int:
    """Trace infos (tags, metadata, assessments), then all spans in one call, then the links
    to the (model, prompt) runs in calls of LINKS_PER_CALL; returns how many traces."""
    from benchlib.tracking.mlflow_run import client

    tracing = TracingClient(uri)
    location = TraceLocation.from_experiment_id(experiment_id)
    for info in traces.infos:
        info.trace_location = location
        tracing.start_trace(info)
    tracing.log_spans(experiment_id, traces.spans)
    mlflow = client(uri)
    for trace_ids, run_id in _links(traces):
        mlflow.link_traces_to_run(trace_ids, run_id)
    return len(traces.infos)


def _links(traces: RunTraces) -> list[tuple[list[str], str]]:
    by_run: dict[str, list[str]] = defaultdict(list)
    for info in traces.infos:
        run_id = info.trace_metadata.get(TraceMetadataKey.SOURCE_RUN)
        if run_id:
            by_run[run_id].append(info.trace_id)
    return [
        (ids[start : start + LINKS_PER_CALL], run_id)
        for run_id, ids in by_run.items()
        for start in range(0, len(ids), LINKS_PER_CALL)
    ]
