"""The `benchlib` command's fast start: a fork server that has already imported benchlib,
Prefect, MLflow and the rest, and forks a copy of itself for each command.

Importing those is most of a command's start-up (~2.5 s of the ~4 s before a run's first
request, measured on this project's 2-core box); a forked copy starts where the imports end.
`benchlib stack up` starts the server; the console script (`main` here) asks it first and runs
the command in its own process when no server answers or the server declines. The forked
process is the command: it gets the caller's stdin, stdout and stderr (passed over the Unix
socket), environment, working directory and arguments, and the caller gets its exit status.
Signals the caller receives (Ctrl-C) are passed on. A module edited or upgraded on disk makes
the server decline and start afresh. Rails' Spring and Gradle's daemon do the same for the
same reason.

Only the standard library is imported until the server has answered: the point is a fast start.
"""

import contextlib
import importlib
import json
import os
import selectors
import signal
import socket
import sys
import threading
from pathlib import Path

from benchlib.settings import home_path

DISABLE_ENV = "BENCHLIB_NO_FORKSERVER"
# Commands that own a process's lifetime (servers, workers, the stack with this server in it).
IN_PROCESS = frozenset({"stack", "api", "worker"})
# What a command imports (the run path's lazy imports included), imported once here.
PRELOAD = (
    "benchlib.cli",
    "benchlib.tracking",
    "flows.benchmark",
    "mlflow.tracking",
    "mlflow.store.tracking.sqlalchemy_store",
    # imported lazily by Prefect's first flow and task, by anyio's first loop, by SQLAlchemy's
    # first sqlite engine: ~50 ms of every run (py-spy on warm reruns)
    "prefect.flow_engine",
    "prefect.task_engine",
    "prefect.utilities.visualization",
    "anyio._backends._asyncio",
    "sqlalchemy.dialects.sqlite.pysqlite",
)
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
HEADER = 8  # bytes: the length of the request that follows


def socket_file(home: Path | None = None) -> Path:
    """Where the fork server of a benchlib home (by default this process's) listens."""
    return (home or home_path()) / "stack" / "forkserver.sock"


def command(path: Path) -> list[str]:
    """How to start a fork server listening at `path`."""
    return [sys.executable, "-m", "benchlib.forkserver", str(path)]


# The caller's side: the console script.


def main() -> None:
    code = _run_forked(sys.argv)
    if code is None:
        from benchlib.cli import main as run_here

        run_here()
    else:
        sys.exit(code)


def _run_forked(argv: list[str]) -> int | None:
    """The command's exit status, or None when no fork server takes the command."""
    if os.environ.get(DISABLE_ENV) or len(argv) < 2 or argv[1] in IN_PROCESS:
        return None
    path = socket_file()
    if not path.exists():
        return None
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    request = {
        "argv": argv,
        "env": dict(os.environ),
        "cwd": os.getcwd(),
        "path": sys.path,
        "python": _interpreter(),
    }
    payload = json.dumps(request).encode()
    try:
        server.connect(str(path))
        socket.send_fds(server, [len(payload).to_bytes(HEADER, "big")], [0, 1, 2])
        server.sendall(payload)
        replies = server.makefile("rb")
        if not replies.readline().startswith(b"ok "):
            return None
    except OSError:
        return None
    for signum in FORWARDED:
        if signal.getsignal(signum) is not signal.SIG_IGN:  # a background job ignores SIGINT
            signal.signal(signum, lambda number, _: server.send(bytes([number])))
    last = replies.readline()
    if last.startswith(b"exit "):
        return int(last.split()[1])
    print(
        f"benchlib: the fork server ended the command without its exit status; its log is "
        f"{path.with_suffix('.log')}",
        file=sys.stderr,
    )
    return 1


# The server's side.


def serve(path: Path) -> None:
    """Preload, then fork a command for each caller until SIGTERM."""
    _detach_from_terminal()
    watched = _preload()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(str(path))
    except OSError as exc:  # e.g. a path longer than a Unix socket's 107 bytes
        sys.exit(f"cannot listen on {path}: {exc}; commands run in their own process")
    path.chmod(0o600)
    listener.listen(16)
    wake, wake_writer = socket.socketpair()
    wake_writer.setblocking(False)
    signal.set_wakeup_fd(wake_writer.fileno())
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    selector.register(wake, selectors.EVENT_READ)
    server_pid = os.getpid()
    running: dict[int, socket.socket] = {}
    _log(f"ready: {len(watched)} modules preloaded, listening on {path}")
    try:
        while True:
            for key, _ in selector.select():
                if key.fileobj is wake:
                    wake.recv(4096)
                    _reap(running)
                    continue
                caller, _ = listener.accept()
                own = [listener, wake, wake_writer, *running.values()]
                stale = _stale(watched)
                if (pid := _fork_command(caller, stale, own)) is not None:
                    running[pid] = caller
                elif stale and not running:
                    _log("a preloaded module changed on disk: restarting")
                    os.execv(sys.executable, command(path))
    finally:
        if os.getpid() == server_pid:  # a forked command unwinds through here too
            path.unlink(missing_ok=True)


def _detach_from_terminal() -> None:
    """In a session of its own the server has no controlling terminal, so a command reading the
    caller's terminal is not stopped as a background job (SIGTTIN)."""
    with contextlib.suppress(OSError):  # already a session leader (as `stack up` starts it)
        os.setsid()


def _preload() -> dict[str, int]:
    """Imports what a command would; returns each loaded file's modification time, to notice
    an edited benchlib or an upgraded library."""
    for name in PRELOAD:
        importlib.import_module(name)
    files = (getattr(module, "__file__", None) for module in list(sys.modules.values()))
    return {file: mtime for file in files if file and (mtime := _mtime(file)) is not None}


def _stale(watched: dict[str, int]) -> bool:
    return any(_mtime(file) != mtime for file, mtime in watched.items())


def _mtime(file: str) -> int | None:
    try:
        return os.stat(file).st_mtime_ns
    except OSError:
        return None


def _fork_command(caller: socket.socket, stale: bool, own: list[socket.socket]) -> int | None:
    """The forked command's pid, or None when the request is declined (the caller then runs
    the command itself)."""
    caller.settimeout(5)
    fds: list[int] = []
    try:
        header, fds, _, _ = socket.recv_fds(caller, HEADER, 3)
        request = json.loads(_receive(caller, int.from_bytes(header, "big")))
        refusal = _refusal(request, stale, len(fds))
        if refusal:
            _log(f"declined {request['argv'][1:]}: {refusal}")
            caller.sendall(f"no {refusal}\n".encode())
    except (OSError, ValueError, KeyError) as exc:
        _log(f"a request failed: {exc!r}")
        refusal = "unreadable request"
    if refusal:
        for fd in fds:
            os.close(fd)
        caller.close()
        return None
    caller.settimeout(None)
    pid = os.fork()
    if pid == 0:
        _become_command(caller, request, fds, own)
    for fd in fds:
        os.close(fd)
    _log(f"pid {pid}: benchlib {' '.join(request['argv'][1:])}")
    return pid


def _receive(caller: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = caller.recv(min(left, 1 << 16))
        if not chunk:
            raise ValueError("the request ended early")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _refusal(request: dict, stale: bool, n_fds: int) -> str:
    """Why this process cannot stand in for the caller's own interpreter, or ''."""
    if n_fds != 3:
        return "stdin, stdout and stderr did not arrive"
    if request["python"] != _interpreter():
        return f"another Python ({request['python']}, this is {_interpreter()})"
    python_env = {k: v for k, v in request["env"].items() if k.startswith("PYTHON")}
    if python_env != {k: v for k, v in os.environ.items() if k.startswith("PYTHON")}:
        return "different PYTHON* environment variables"
    if stale:
        return "a preloaded module changed on disk"
    return ""


def _interpreter() -> list[str]:
    """The interpreter and its environment (a venv's python and python3 are the same one)."""
    return [os.path.realpath(sys.executable), sys.prefix]


def _become_command(
    caller: socket.socket, request: dict, fds: list[int], own: list[socket.socket]
) -> None:
    """In the forked process: take the caller's streams, environment and arguments, then run
    the command as its own interpreter would (exit handlers and exit status included)."""
    for sock in own:
        sock.close()
    signal.set_wakeup_fd(-1)
    # As a new interpreter would have them, whatever the server was started with (a server
    # started in the background ignores SIGINT, under nohup SIGHUP).
    for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.stdout.flush()
    sys.stderr.flush()
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stdout = open(1, "w", encoding="utf-8", buffering=1 if os.isatty(1) else -1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", encoding="utf-8", buffering=1, closefd=False)  # noqa: SIM115
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    sys.argv = request["argv"]
    sys.path[:] = request["path"]
    _refresh_prefect()
    from benchlib.cli import attach_streams
    from benchlib.cli import main as run_command

    attach_streams()
    caller.sendall(f"ok {os.getpid()}\n".encode())
    threading.Thread(target=_relay_signals, args=(caller,), daemon=True).start()
    run_command()
    sys.exit(0)


def _refresh_prefect() -> None:
    """Prefect read its settings and set up logging when it was imported, in the server's
    environment; the caller's may differ (PREFECT_API_URL, log levels, the profile)."""
    from prefect.context import refresh_global_settings_context
    from prefect.logging.configuration import setup_logging

    refresh_global_settings_context()
    setup_logging(incremental=False)


def _relay_signals(caller: socket.socket) -> None:
    """The caller's signals, one byte each; the caller gone is a hangup, as for a terminal."""
    while received := caller.recv(1):
        os.kill(os.getpid(), received[0])
    os.kill(os.getpid(), signal.SIGHUP)


def _reap(running: dict[int, socket.socket]) -> None:
    while running:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            return
        code = os.waitstatus_to_exitcode(status)
        code = 128 - code if code < 0 else code  # killed by a signal, as a shell reports it
        _log(f"pid {pid}: exit {code}")
        caller = running.pop(pid, None)
        if caller is None:
            continue
        with contextlib.suppress(OSError):  # the caller is gone
            caller.sendall(f"exit {code}\n".encode())
        caller.close()


def _log(line: str) -> None:
    print(line, flush=True)


if __name__ == "__main__":
    serve(Path(sys.argv[1]) if len(sys.argv) > 1 else socket_file())
