"""Files benchlib writes for people (reports, verdicts, judge files, a suite's hashes).

An output path is checked before the command does any work (a folder, a missing permission or
a file in the way of a folder is bad input, not a traceback after the work is done), and a file
is written whole or not at all: a reader never sees half a report, and a failed write leaves no
partial file behind.
"""

import os
from pathlib import Path

from benchlib.errors import BenchlibError


def output_problem(path: Path) -> str | None:
    """Why `path` cannot be written, or None. Writes nothing (the folders a write would make
    are not made here)."""
    if path.is_dir():
        return "is a folder: expected a file path"
    if path.exists():
        if not path.is_file():
            return "is not a regular file"
        return None if os.access(path, os.W_OK) else "is not writable"
    parent = path.parent
    while not parent.exists():
        if parent == parent.parent:
            return "has no existing folder above it"
        parent = parent.parent
    if not parent.is_dir():
        return f"cannot be created: {parent} is not a folder"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot be created: folder {parent} is not writable"
    return None


def check_output(path: Path) -> Path:
    problem = output_problem(path)
    if problem:
        raise BenchlibError(f"{path}: {problem}")
    return path


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a partial file beside it, renamed over it once whole."""
    check_output(path)
    partial = path.with_name(f".{path.name}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(text, encoding="utf-8")
        partial.replace(path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise BenchlibError(f"{path}: cannot write: {exc.strerror or exc}") from None
