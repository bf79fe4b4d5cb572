"""A fault-injecting HTTP proxy on loopback, in front of a real model server.

Raw asyncio streams rather than a web framework: the faults that matter (a reset connection, a
request left hanging past the client's timeout, a 200 whose body is cut short) sit below what an
ASGI handler can do. Chat requests (`.../chat/completions`) take the next fault of the schedule,
then are forwarded untouched; every other path (/v1/models, /health) is always forwarded, so
preflight sees a healthy server.
"""

import asyncio
import hashlib
import json
import random
import socket
import struct
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus

import httpx


@dataclass(frozen=True)
class Fault:
    """What the proxy does with one chat request.

    kind: `pass` forward; `status` answer `status` with a JSON error (and `Retry-After` when
    `retry_after` is set); `reset` drop the TCP connection (RST); `stall` say nothing for
    `seconds` (past the client's timeout) then close; `not_json` a 200 HTML page; `truncated`
    the model's real 200 cut in half; `slow` the model's answer after `seconds`; `garbage` the
    model's answer with its content replaced by prose (valid HTTP and JSON, not the JSON asked).
    """

    kind: str = "pass"
    status: int = 0
    retry_after: str | None = None
    seconds: float = 0.0

    @property
    def label(self) -> str:
        return f"{self.kind} {self.status}" if self.status else self.kind


PASS = Fault()
KINDS = ("status", "reset", "stall", "not_json", "truncated", "slow", "garbage")
GARBAGE_TEXT = "Sure! Here is a great tip for you: take breaks. Hope this helps"


def http_error(status: int, retry_after: str | None = None) -> Fault:
    return Fault("status", status=status, retry_after=retry_after)


def random_schedule(n: int, rate: float, seed: int, stall_s: float) -> list[Fault]:
    """`n` chat requests of which about `rate` get a fault, every kind equally likely."""
    rng = random.Random(seed)
    choices = [
        http_error(500),
        http_error(503),
        http_error(429, retry_after="1"),
        Fault("reset"),
        Fault("stall", seconds=stall_s),
        Fault("not_json"),
        Fault("truncated"),
        Fault("slow", seconds=0.5),
        Fault("garbage"),
    ]
    return [rng.choice(choices) if rng.random() < rate else PASS for _ in range(n)]


@dataclass
class FaultProxy:
    """The proxy's schedule and counters (read them from the test; the proxy thread writes)."""

    upstream: str
    schedule: list[Fault] = field(default_factory=list)
    url: str = ""
    seen: int = 0  # chat requests received
    forwarded: int = 0  # chat requests the model answered
    injected: Counter = field(default_factory=Counter)  # faults by label
    delivered: list[str] = field(default_factory=list)  # hashes of requests answered in full
    in_flight: int = 0  # chat requests received and not yet answered
    max_in_flight: int = 0  # the most at once
    connections: set[asyncio.StreamWriter] = field(default_factory=set)

    def regenerated(self) -> int:
        """Requests the model answered in full more than once (work done twice)."""
        return len(self.delivered) - len(set(self.delivered))

    async def _forward(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        async with httpx.AsyncClient(base_url=self.upstream, timeout=600) as client:
            response = await client.request(
                method, path, content=body, headers={"content-type": "application/json"}
            )
        return response.status_code, response.content

    @contextmanager
    def _counted(self) -> Iterator[None]:
        """One chat request from arrival to answer (the proxy's one event-loop thread counts)."""
        self.seen += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            yield
        finally:
            self.in_flight -= 1

    async def _answer(
        self,
        request: tuple[str, str, bytes],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        """Write the answer to one request; False when the connection must end."""
        method, path, body = request
        if not path.endswith("/chat/completions"):
            status, content = await self._forward(method, path, body)
            _respond(writer, status, content)
            return True
        with self._counted():
            fault = self.schedule.pop(0) if self.schedule else PASS
            if fault.kind != "pass":
                self.injected[fault.label] += 1
            if fault.kind == "status":
                error = json.dumps({"error": {"message": f"injected {fault.status}"}}).encode()
                extra = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                _respond(writer, fault.status, error, extra)
                return True
            if fault.kind == "reset":
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
                return False
            if fault.kind == "stall":
                # Hold the request until the client hangs up (its timeout, or its process
                # killed), at most `seconds`.
                await asyncio.wait_for(reader.read(), fault.seconds)
                return False
            if fault.kind == "not_json":
                page = b"<html><body>502 upstream hiccup</body></html>"
                _respond(writer, 200, page, {}, "text/html")
                return True
            if fault.kind == "slow":
                await asyncio.sleep(fault.seconds)
            status, content = await self._forward(method, path, body)
            self.forwarded += 1
            if fault.kind == "truncated":
                content = content[: len(content) // 2]
            elif fault.kind == "garbage" and status == 200:
                answer = json.loads(content)
                answer["choices"][0]["message"]["content"] = GARBAGE_TEXT
                content = json.dumps(answer).encode()
            if status == 200 and fault.kind != "truncated":
                self.delivered.append(hashlib.sha256(body).hexdigest())
            _respond(writer, status, content)
            return True

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.connections.add(writer)
        try:
            while (request := await _read_request(reader)) and await self._answer(
                request, reader, writer
            ):
                await writer.drain()
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass
        finally:
            self.connections.discard(writer)
            if not writer.transport.is_closing():
                writer.close()


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, bytes] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None  # the client closed a kept-alive connection
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    length = int(headers.get("content-length", "0"))
    return method, path, await reader.readexactly(length) if length else b""


def _respond(
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes,
    headers: dict[str, str] | None = None,
    content_type: str = "application/json",
) -> None:
    reason = HTTPStatus(status).phrase
    lines = [
        f"HTTP/1.1 {status} {reason}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        *(f"{k}: {v}" for k, v in (headers or {}).items()),
    ]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)


@contextmanager
def fault_proxy(upstream: str, schedule: list[Fault] | None = None) -> Iterator[FaultProxy]:
    """Serve a FaultProxy in front of `upstream` on 127.0.0.1 until the block ends."""
    proxy = FaultProxy(upstream=upstream, schedule=list(schedule or []))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> asyncio.Server:
        return await asyncio.start_server(proxy._connection, "127.0.0.1", 0)

    server = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)
    proxy.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield proxy
    finally:

        async def stop() -> None:
            server.close()
            for writer in list(proxy.connections):
                writer.transport.abort()  # ends every handler, stalled ones included
            handlers = asyncio.all_tasks() - {asyncio.current_task()}
            if handlers:
                await asyncio.wait(handlers, timeout=10)

        asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
