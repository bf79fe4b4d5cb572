"""Files people give benchlib to read, and files benchlib writes for them (reports, verdicts,
judge files, a suite's hashes).

A file to read must be a regular file of at most MAX_BYTES, in UTF-8.

An output path is checked before the command does any work (a folder, a missing permission or
a file in the way of a folder is bad input, not a traceback after the work is done), and a file
is written whole or not at all: a reader never sees half a report, and a failed write leaves no
partial file behind.
"""

import os
import stat
from pathlib import Path

from benchlib.errors import BenchlibError

MAX_BYTES = 10 * 1024 * 1024


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


def read_text(path: Path, what: str = "file") -> str:
    """A file people give benchlib to read (a config, a suite file, a judge file): its UTF-8
    text, refused before it is opened when it is not a regular file (a FIFO blocks forever,
    /dev/zero never ends) and before it is read when it is over MAX_BYTES."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise BenchlibError(f"{path}: {what} not found") from None
    except OSError as exc:  # ELOOP (a symlink loop), EACCES on a parent, a name too long...
        raise BenchlibError(f"{path}: cannot read the {what}: {exc.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise BenchlibError(f"{path}: expected a {what}, found a folder")
    if not stat.S_ISREG(info.st_mode):
        raise BenchlibError(
            f"{path}: expected a {what} (a regular file), found {_kind(info.st_mode)}"
        )
    if info.st_size > MAX_BYTES:
        raise BenchlibError(
            f"{path}: {what} is {info.st_size:,} bytes: expected at most {MAX_BYTES:,}"
        )
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_BYTES + 1)  # the file may have grown since stat
    except OSError as exc:
        raise BenchlibError(f"{path}: cannot read the {what}: {exc.strerror}") from None
    if len(raw) > MAX_BYTES:
        raise BenchlibError(f"{path}: {what} is over {MAX_BYTES:,} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BenchlibError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def _kind(mode: int) -> str:
    kinds = (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for test, name in kinds if test(mode)), "a special file")
