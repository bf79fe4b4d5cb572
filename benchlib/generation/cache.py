"""The response cache: a provider's answer, content-addressed by everything that determines it.

The key holds the provider and model, the weights' digest when known, the rendered messages, the
generation parameters (temperature, seed, max_tokens, output schema) and the attempt index, so
an unchanged grid re-runs with zero provider calls, and changing any of them misses. Errors and
truncated answers are never cached. An answer that used up the request's max_tokens is not
truncated: it is what the model gives for that key (max_tokens is part of it) and the same
call would give it again. One cut before that (the server's context filled up) is.
It lives in the benchlib database.
"""

import hashlib

from sqlalchemy import func
from sqlmodel import col, delete, select

from benchlib.generation.providers import ChatRequest, ChatResult
from benchlib.spec.hashing import canonical_json
from benchlib.store.db import session
from benchlib.store.records import CachedResponse


def cache_key(model: str, digest: str | None, request: ChatRequest, attempt: int) -> str:
    identity = {
        "model": model,
        "digest": digest,
        "request": request.model_dump(),
        "attempt": attempt,
    }
    return hashlib.sha256(canonical_json(identity).encode()).hexdigest()


def lookup(key: str) -> ChatResult | None:
    with session() as s:
        row = s.get(CachedResponse, key)
        return ChatResult.model_validate(row.result) if row else None


def holds(model: str) -> bool:
    """Whether the cache has any answer of `model`: a model's first run skips the lookups of a
    replay from the cache (benchlib.generation.collect.record_cached), one per answer of its
    block."""
    with session() as s:
        query = select(CachedResponse.key).where(CachedResponse.model == model).limit(1)
        return s.exec(query).first() is not None


def store(key: str, model: str, request: ChatRequest, result: ChatResult) -> bool:
    """Cache a complete answer; returns False for what must not be cached."""
    if result.finish_reason == "length" and result.completion_tokens < request.max_tokens:
        return False
    with session() as s:
        s.merge(CachedResponse(key=key, model=model, result=result.model_dump(mode="json")))
    return True


def clear(model: str | None = None) -> int:
    with session() as s:
        query = delete(CachedResponse)
        if model:
            query = query.where(col(CachedResponse.model) == model)
        return s.exec(query).rowcount


def stats() -> list[tuple[str, int]]:
    with session() as s:
        rows = s.exec(
            select(CachedResponse.model, func.count()).group_by(CachedResponse.model)
        ).all()
    return [(model, count) for model, count in rows]
