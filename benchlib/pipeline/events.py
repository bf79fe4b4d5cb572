"""In-process progress events, so the CLI can draw a progress bar for a flow it runs itself.

A deployment run has no listeners and these calls cost nothing; the Prefect UI shows task states.
"""

from collections.abc import Callable
from typing import Any

Listener = Callable[[str, dict[str, Any]], None]
_listeners: list[Listener] = []


def subscribe(listener: Listener) -> Callable[[], None]:
    """Add a listener; returns the function that removes it."""
    _listeners.append(listener)
    return lambda: _listeners.remove(listener)


def emit(kind: str, **data: Any) -> None:
    for listener in list(_listeners):
        listener(kind, data)
