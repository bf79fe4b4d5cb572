"""Bearer-token auth for every endpoint but the health check.

The token comes from BENCHLIB_API_TOKEN and is compared in constant time. Browsers carry the
same token in an HttpOnly, SameSite=Strict cookie set by the /login form, so the pages can call
the API without the token ever being readable by JavaScript. A request that changes something
on a cookie's authority also carries the CSRF token (`X-CSRF-Token`), which only the server's
own pages know: SameSite does not stop another site on the same host (another port) from
sending the cookie.

The API's routes are checked twice: by the guard middleware before the body is read
(benchlib.api.guard) and by the routes' dependency below (which the OpenAPI spec shows).
"""

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import Headers

TOKEN_ENV = "BENCHLIB_API_TOKEN"
COOKIE = "benchlib_token"
CSRF_HEADER = "X-CSRF-Token"
UNAUTHORIZED = f"missing or wrong token: send `Authorization: Bearer <{TOKEN_ENV}>`"

_bearer = HTTPBearer(auto_error=False, description=f"The token in {TOKEN_ENV}.")


class LoginRequired(Exception):
    """A page asked for without a valid token: the browser is sent to /login."""


def token_matches(expected: str, given: str) -> bool:
    if not expected:  # a local demo: started with --demo and no token
        return True
    return hmac.compare_digest(given.encode(), expected.encode())


def token_ok(request: Request, given: str) -> bool:
    return token_matches(request.app.state.settings.token, given)


def presented(headers: Headers, cookies: dict[str, str]) -> tuple[str, bool]:
    """(the token a request presents, whether it came from the cookie): a bearer token if the
    Authorization header has one, else the login cookie."""
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip(), False
    return cookies.get(COOKIE, ""), True


def csrf_token(token: str) -> str:
    """Derived from the API token: the pages embed it, other sites cannot read or compute it."""
    return hmac.new(token.encode(), b"benchlib-csrf", hashlib.sha256).hexdigest()


def _given(request: Request, credentials: HTTPAuthorizationCredentials | None) -> str:
    return credentials.credentials if credentials else request.cookies.get(COOKIE, "")


def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    if not token_ok(request, _given(request, credentials)):
        raise HTTPException(401, detail=UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"})


def require_page_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    if not token_ok(request, _given(request, credentials)):
        raise LoginRequired
