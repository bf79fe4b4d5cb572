"""The admin API's outer guard: a pure ASGI middleware that refuses a request before any of it
is parsed, in this order:

1. a Host header not in the allowed names (DNS rebinding): 400;
2. a change (POST, PUT, PATCH, DELETE) a browser sends from another origin or site: 403;
3. an API route without the token: 401; a change on the cookie's authority without the CSRF
   token: 403;
4. a change to an API route whose body is not JSON: 415 (a form or `text/plain` POST is what
   another web page can send without asking);
5. a body larger than the limit, by its Content-Length or by the bytes that arrive: 413;
6. JSON nested deeper than MAX_DEPTH (Python's parser would recurse until it fails): 422.

Every answer, the app's too, carries headers that keep the pages out of frames and stop
browsers guessing content types.
"""

import re
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from benchlib.api.auth import CSRF_HEADER, UNAUTHORIZED, csrf_token, presented, token_matches
from benchlib.api.settings import HOSTS_ENV, ApiSettings

CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_DEPTH = 64
SECURITY_HEADERS = [
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]
# A JSON string (escapes included) as one token, or a bracket.
_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


class Refused(Exception):
    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers


def is_api(path: str) -> bool:
    """The routes behind the token (the pages redirect to /login instead; health is open)."""
    return (path.startswith("/api/") and path != "/api/health") or path in (
        "/openapi.json",
        "/docs",
    )


def host_name(host: str) -> str:
    """`example.org:8765` → `example.org`, `[::1]:8765` → `::1`."""
    if host.startswith("["):
        return host[1:].partition("]")[0].lower()
    return host.rpartition(":")[0].lower() if host.count(":") == 1 else host.lower()


def json_depth(body: bytes) -> int:
    """How deep brackets nest, strings skipped (a bound checked without parsing)."""
    depth = deepest = 0
    for token in _TOKENS.finditer(body):
        char = token[0][:1]
        if char in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif char in (b"]", b"}"):
            depth -= 1
    return deepest


def is_json(content_type: str) -> bool:
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class Guard:
    def __init__(self, app: ASGIApp, settings: ApiSettings):
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        try:
            receive = await self._check(scope, receive)
        except Refused as refused:
            reply = JSONResponse({"detail": refused.detail}, refused.status, refused.headers)
            await reply(scope, receive, secured)
            return
        await self.app(scope, receive, secured)

    async def _check(self, scope: Scope, receive: Receive) -> Receive:
        headers = Headers(scope=scope)
        method, path = scope["method"], scope["path"]
        allowed = self.settings.allowed_hosts
        host = headers.get("host", "")
        if "*" not in allowed and host_name(host) not in [h.lower() for h in allowed]:
            raise Refused(
                400,
                f"Host header {host[:100]!r} is not one this server answers to (the operator "
                f"adds names with {HOSTS_ENV})",
            )
        if method in CHANGES:
            self._same_origin(headers, host)
        if is_api(path):
            token, by_cookie = presented(headers, cookie_parser(headers.get("cookie", "")))
            if not token_matches(self.settings.token, token):
                raise Refused(401, UNAUTHORIZED, {"WWW-Authenticate": "Bearer"})
            cookie_change = method in CHANGES and self.settings.token and by_cookie
            if cookie_change and headers.get(CSRF_HEADER, "") != csrf_token(self.settings.token):
                raise Refused(403, f"missing or wrong {CSRF_HEADER} header (sent by the pages)")
            if method in CHANGES - {"DELETE"} and not is_json(headers.get("content-type", "")):
                raise Refused(415, "request body: expected Content-Type: application/json")
        return await self._bounded(headers, receive)

    @staticmethod
    def _same_origin(headers: Headers, host: str) -> None:
        """Browsers say where a request comes from; tools (curl, httpx) send neither header."""
        origin = headers.get("origin")
        if origin is not None and urlsplit(origin).netloc.lower() != host.lower():
            raise Refused(403, f"cross-origin request from {origin[:100]!r} refused")
        if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            raise Refused(403, "cross-site request refused")

    async def _bounded(self, headers: Headers, receive: Receive) -> Receive:
        """The body, read here up to the limit (the app reads it again from memory)."""
        limit = self.settings.max_body_bytes
        too_large = Refused(413, f"request body: larger than {limit} bytes")
        length = headers.get("content-length")
        if length is None and "transfer-encoding" not in headers:
            return receive
        if length is not None and (not length.isdigit() or int(length) > limit):
            raise too_large
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise Refused(400, "request body: the client went away")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if is_json(headers.get("content-type", "")) and json_depth(body) > MAX_DEPTH:
            raise Refused(422, f"request body: JSON nested deeper than {MAX_DEPTH} levels")
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        return replay
