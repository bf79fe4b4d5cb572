"""Bearer-token auth for every endpoint but the health check.

The token comes from BENCHLIB_API_TOKEN and is compared in constant time. Browsers carry the
same token in an HttpOnly, SameSite=Strict cookie set by the /login form, so the pages can call
the API without the token ever being readable by JavaScript.
"""

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

TOKEN_ENV = "BENCHLIB_API_TOKEN"
COOKIE = "benchlib_token"

_bearer = HTTPBearer(auto_error=False, description=f"The token in {TOKEN_ENV}.")


class LoginRequired(Exception):
    """A page asked for without a valid token: the browser is sent to /login."""


def token_ok(request: Request, given: str) -> bool:
    expected: str = request.app.state.settings.token
    if not expected:  # a local demo: started with --demo and no token
        return True
    return hmac.compare_digest(given.encode(), expected.encode())


def _given(request: Request, credentials: HTTPAuthorizationCredentials | None) -> str:
    return credentials.credentials if credentials else request.cookies.get(COOKIE, "")


def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    if not token_ok(request, _given(request, credentials)):
        raise HTTPException(
            401,
            detail=f"missing or wrong token: send `Authorization: Bearer <{TOKEN_ENV}>`",
            headers={"WWW-Authenticate": "Bearer"},
        )


def require_page_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    if not token_ok(request, _given(request, credentials)):
        raise LoginRequired
