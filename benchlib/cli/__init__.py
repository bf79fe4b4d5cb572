"""The `benchlib` command: a package of command modules (see benchlib.cli.app)."""

from benchlib.cli import admin, judge, results, run  # noqa: F401 - they register commands
from benchlib.cli.app import app
from benchlib.cli.common import fail
from benchlib.errors import BenchlibError


def main() -> None:
    """The console script: user errors print one clear message and exit 2, no traceback."""
    try:
        app(prog_name="benchlib")
    except BenchlibError as exc:
        fail(str(exc))
