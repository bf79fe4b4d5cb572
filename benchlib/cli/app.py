"""`benchlib`: run a benchmark locally, list runs, show one, print its leaderboard."""

from typing import Any

import typer
from typer.core import TyperGroup

# Commands that do not run a flow (`runs`, `show`, `judge`, `leaderboard`, `report`, `compare`,
# `--help`) never import Prefect or MLflow: the modules that do are imported inside the
# commands that need them (tests/test_cli.py checks it), so those commands start at once.

ORDER = [
    *("run", "resume", "sync"),
    *("runs", "show", "leaderboard", "report", "compare"),
    *("judge", "api", "stack", "worker", "cache", "suite"),
]


class _Commands(TyperGroup):
    """`--help` lists the commands in the order of a benchmark's life, not of their modules."""

    def list_commands(self, ctx: Any) -> list[str]:
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER))


# The command modules of benchlib.cli register on it.
app = typer.Typer(help=__doc__, cls=_Commands, no_args_is_help=True, pretty_exceptions_enable=False)
