"""User-facing errors.

Anything the user can fix (a config key, a suite file, a model spec, an endpoint) raises
`BenchlibError` with a message that names the file (and line), the field, the value and what was
expected; the CLI prints it without a traceback and exits with code 2 (the admin API: 422).
One problem per line: `path:line: field: message (got value)`.
"""

import difflib
import types
from collections.abc import Callable, Sequence
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails


class BenchlibError(Exception):
    """A problem with the user's input or environment, explained in the message."""


class ProviderError(BenchlibError):
    """A model provider refused or failed a request in a way retrying will not fix."""


class RemoteAnswer(BenchlibError):
    """A problem whose message quotes what a remote server answered (e.g. its model list).
    The CLI prints it whole; the admin API answers with `public` only, so a request cannot
    read a server's content back through an error."""

    def __init__(self, message: str, public: str):
        super().__init__(message)
        self.public = public


class NotFound(BenchlibError):
    """The run, fixture or version asked for does not exist (the admin API answers 404)."""


class Conflict(BenchlibError):
    """The request clashes with the current state (the admin API answers 409)."""


class Unavailable(BenchlibError):
    """A service benchlib needs (Prefect) cannot be reached (the admin API answers 503)."""


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside `X`, `X | None`, `list[X]` or `dict[str, X]`, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (Union, types.UnionType, list, dict):
        for arg in get_args(annotation):
            found = _model_in(arg)
            if found:
                return found
    return None


def known_keys(model: type[BaseModel], loc: Sequence[str | int]) -> list[str]:
    """The keys accepted in the mapping at `loc` of `model`'s input (aliases included)."""
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None:
            return []
        if isinstance(part, int) or part not in current.model_fields:
            continue  # an index or a dict key: stay on the item's model
        current = _model_in(current.model_fields[part].annotation)
    if current is None:
        return []
    names = set(current.model_fields) | set(getattr(current, "inline_keys", ()))
    for info in current.model_fields.values():
        choices = getattr(info.validation_alias, "choices", None) or []
        names |= {choice for choice in choices if isinstance(choice, str)}
    return sorted(names)


def errors_at(
    model: type[BaseModel], problems: Sequence[tuple[Sequence[str | int], str, Any]]
) -> ValidationError:
    """A model-wide check's errors at the entries they are about (`composite.clarity`), each
    `(loc, message, value)`: the file's line is then the entry's, not the document's first."""
    details = [
        InitErrorDetails(type="value_error", loc=tuple(loc), input=value, ctx={"error": message})
        for loc, message, value in problems
    ]
    return ValidationError.from_exception_data(model.__name__, details)


def did_you_mean(value: str, known: Sequence[str]) -> str:
    """`; did you mean 'x'?` when one of `known` is close to `value` (a typo), else ''."""
    close = difflib.get_close_matches(value, list(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _expected_key(model: type[BaseModel] | None, loc: Sequence[str | int]) -> str:
    if model is None:
        return ""
    known = known_keys(model, loc[:-1])
    hint = did_you_mean(str(loc[-1]), known)
    if hint:
        return hint
    return f"; expected one of {', '.join(known)}" if known else ""


def shown(value: Any, limit: int = 80) -> str:
    """`repr(value)`, cut to `limit` characters: enough to recognise it in one line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_validation_error(
    exc: ValidationError,
    source: str | Callable[[Sequence[str | int]], str],
    model: type[BaseModel] | None = None,
) -> str:
    """One line per problem: `source: field.path: what is wrong (got value)`. `source` may be a
    function of the field's path (a file's `path:line`); an unknown key says which key was
    probably meant (`model` gives the accepted keys)."""
    return describe_errors(exc.errors(), source, model)


def describe_errors(
    errors: Sequence[Any],
    source: str | Callable[[Sequence[str | int]], str],
    model: type[BaseModel] | None = None,
) -> str:
    """The same lines from pydantic's error dicts (FastAPI hands them over without the
    exception)."""
    lines = []
    for err in errors:
        loc = err["loc"]
        where = source(loc) if callable(source) else source
        field = ".".join(str(part) for part in loc) or "(top level)"
        message = err["msg"].removeprefix("Value error, ")
        given = err.get("input")
        got = "" if isinstance(given, dict) else f" (got {shown(given)})"
        hint = _expected_key(model, loc) if err["type"] == "extra_forbidden" else ""
        lines.append(f"{where}: {field}: {message}{got}{hint}")
    return "\n".join(lines)
