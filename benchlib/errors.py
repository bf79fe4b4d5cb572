"""User-facing errors.

Anything the user can fix (a config key, a suite file, a model spec, an endpoint) raises
`BenchlibError` with a message that names the file, field or value and what was expected; the
CLI prints it without a traceback and exits with code 2.
"""

from pydantic import ValidationError


class BenchlibError(Exception):
    """A problem with the user's input or environment, explained in the message."""


class ProviderError(BenchlibError):
    """A model provider refused or failed a request in a way retrying will not fix."""


def describe_validation_error(exc: ValidationError, source: str) -> str:
    """One line per problem: `source: field.path: what was given -> what was expected`."""
    lines = [f"{source}: invalid configuration ({exc.error_count()} problem(s))"]
    for err in exc.errors():
        where = ".".join(str(part) for part in err["loc"]) or "(top level)"
        given = err.get("input")
        shown = f" (got {given!r})" if not isinstance(given, dict) else ""
        lines.append(f"  - {where}: {err['msg']}{shown}")
    return "\n".join(lines)
