"""Bounds on the numbers and strings people give benchlib, shared by every edge that takes them
(config files, CLI options, flow parameters, the admin API).

A value passes only if everything downstream can hold it: the database (64-bit integers), the
model servers (llama.cpp takes a 32-bit seed; 0xFFFFFFFF means "random"), Prefect (a suspend
timeout in seconds), the OS (ports). A value that validation let through and a later layer
refused would fail mid-run, after records exist.
"""

import math
from collections.abc import Callable

import typer

MAX_CANDIDATES = 100
# Candidate i is generated with seed + i, and llama.cpp reads the seed as an unsigned 32-bit
# integer whose top value asks for a random seed.
MAX_SEED = 2**32 - 2 - MAX_CANDIDATES
MAX_SCENARIOS = 1_000_000
MAX_ATTEMPTS = 10_000
MAX_MODEL_B = 10_000.0
MAX_REQUEST_TIMEOUT_S = 24 * 3600.0
MAX_BACKOFF_S = 3600.0
MAX_FLUSH_S = 24 * 3600.0
MAX_JUDGE_TIMEOUT_S = 366 * 24 * 3600
MAX_TOLERANCE = 1_000.0
MAX_LIST_LIMIT = 10_000
MAX_WAIT_S = 7 * 24 * 3600.0
MAX_SLOTS = 64
MIN_PORT, MAX_PORT = 1, 65535
# Run ids are at most 64 characters (config.run_id); a prefix longer than that names no run.
MAX_RUN_ID = 64
# A judge's name or id, and a comment on one output (the API and judge files share them).
MAX_JUDGE = 200
MAX_COMMENT = 10_000


def number_option(
    kind: type[int] | type[float], low: float | None = None, high: float | None = None
) -> Callable[[str], int | float]:
    """A CLI option parser that quotes the value it refuses and says what was expected: a
    finite number (no nan, no inf), within [low, high] when given."""
    expected = "a whole number" if kind is int else "a number"
    if low is not None and high is not None:
        expected += f" from {low:g} to {high:g}"
    elif low is not None:
        expected += f" of at least {low:g}"

    def parse(value: str | int | float) -> int | float:
        try:
            number = kind(value)
        except (TypeError, ValueError):
            raise typer.BadParameter(f"expected {expected}, got {value!r}") from None
        if (
            not math.isfinite(number)
            or (low is not None and number < low)
            or (high is not None and number > high)
        ):
            raise typer.BadParameter(f"expected {expected}, got {value!r}")
        return number

    return parse
