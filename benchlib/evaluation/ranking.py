"""What a leaderboard row is ranked on: which step of a chain counts as the answer.

A suite's `rank_on` (suite.yaml) is `final` (the last step of each chain: the answer the user
sees), the name of one step, or `all` (every step counts alike). The leaderboard's ranking
metric, the verdict's per-cell quality, the outputs judges see and judge coverage all read
outputs through `is_ranked`, so they can never disagree on what a row is.
"""

FINAL = "final"
ALL = "all"


def ranked_steps(rank_on: str, steps: list[str]) -> list[str]:
    """The steps of a chain (names in chain order) whose outputs are ranked."""
    if rank_on == ALL:
        return list(steps)
    if rank_on == FINAL:
        return steps[-1:]
    return [step for step in steps if step == rank_on]


def is_ranked(rank_on: str, steps: list[str], step: str) -> bool:
    return step in ranked_steps(rank_on, steps)


def describe(rank_on: str) -> str:
    """How a report names what rows are ranked on."""
    if rank_on == ALL:
        return "every step of each chain"
    if rank_on == FINAL:
        return "the final step of each chain"
    return f"step {rank_on!r}"
