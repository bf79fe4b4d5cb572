"""POST with retries: transient failures back off and retry, within the cell's attempt budget.

Transient: connection errors, timeouts, 429, 5xx and bodies that are not JSON (a cut-off
response). Anything else is the provider telling us no, and fails the call with its message.
Waits grow exponentially with jitter up to the budget's `max_backoff_s`; a `Retry-After` is
never cut short, so one asking for more than that fails the call instead of waiting for hours.
"""

import email.utils
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from benchlib.errors import ProviderError
from benchlib.generation.providers.base import AttemptBudget, CallRecord

MAX_RETRIES = 5


class TransientError(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


def _retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _waiter(max_backoff_s: float):
    backoff = wait_exponential_jitter(multiplier=0.5, max=max_backoff_s, jitter=0.5)

    def wait(state: RetryCallState) -> float:
        """Exponential backoff with jitter, but never sooner than the server's Retry-After."""
        exc = state.outcome.exception() if state.outcome else None
        server_says = exc.retry_after if isinstance(exc, TransientError) else None
        return max(backoff(state), server_says or 0.0)

    return wait


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    error = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(error, dict):
        error = error.get("message", error)
    return str(error)[:500]


def post_json(
    client: httpx.Client,
    url: str,
    body: dict[str, Any],
    budget: AttemptBudget,
    calls: list[CallRecord],
    describe: str,
) -> tuple[dict[str, Any], float]:
    """The parsed JSON answer and the latency of the attempt that produced it."""

    def attempt() -> tuple[dict[str, Any], float]:
        record = CallRecord(attempt=budget.take(), request=body)
        calls.append(record)
        start = time.perf_counter()
        try:
            response = client.post(url, json=body)
        except httpx.TransportError as exc:
            record.latency_s = time.perf_counter() - start
            record.error = f"{type(exc).__name__}: {exc}"
            raise TransientError(record.error) from exc
        record.latency_s = time.perf_counter() - start
        record.status_code = response.status_code
        if response.status_code == 429 or response.status_code >= 500:
            record.error = f"HTTP {response.status_code}: {_error_message(response)}"
            retry_after = _retry_after_seconds(response)
            if retry_after is not None and retry_after > budget.max_backoff_s:
                raise ProviderError(
                    f"{describe}: {record.error}; the server asks to retry after "
                    f"{retry_after:g} s, more than max_backoff_s ({budget.max_backoff_s:g} s)"
                )
            raise TransientError(record.error, retry_after)
        if response.status_code >= 400:
            record.error = f"HTTP {response.status_code}: {_error_message(response)}"
            raise ProviderError(f"{describe} refused the request: {record.error}")
        try:
            payload = response.json()
        except ValueError as exc:
            record.error = f"malformed JSON in the response: {response.text[:200]!r}"
            raise TransientError(record.error) from exc
        if not isinstance(payload, dict):
            record.error = f"expected a JSON object, got {type(payload).__name__}"
            raise TransientError(record.error)
        record.response = payload
        return payload, record.latency_s

    first = len(calls)
    retrying = Retrying(
        retry=retry_if_exception_type(TransientError),
        stop=stop_after_attempt(MAX_RETRIES + 1),
        wait=_waiter(budget.max_backoff_s),
        reraise=True,
    )
    try:
        return retrying(attempt)
    except TransientError as exc:
        raise ProviderError(
            f"{describe} failed after {len(calls) - first} attempt(s): {exc}"
        ) from None
