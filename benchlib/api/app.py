"""The admin API's FastAPI app: settings, error handling, docs and the routers.

Errors are JSON `{"detail": "..."}` with the same messages the CLI prints; anything unexpected
becomes a 500 with a generic message, and the log gets the exception's type and place only
(a message may quote a URL or a key).
"""

import logging
import traceback

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.responses import Response

from benchlib.api import experiments, fixtures, judging, pages, runs
from benchlib.api.auth import TOKEN_ENV, LoginRequired, require_token
from benchlib.api.guard import Guard
from benchlib.api.policy import Forbidden
from benchlib.api.settings import ApiSettings
from benchlib.errors import (
    BenchlibError,
    Conflict,
    NotFound,
    RemoteAnswer,
    Unavailable,
    describe_errors,
)

log = logging.getLogger("benchlib.api")


class Problem(BaseModel):
    detail: str


ERRORS: dict[int | str, dict] = {
    code: {"model": Problem, "description": what}
    for code, what in (
        (400, "A Host header this server does not answer to"),
        (401, "Missing or wrong token"),
        (403, "Not allowed by the server's settings (suite roots, endpoints), or cross-site"),
        (404, "No such run or fixture"),
        (409, "Conflicts with the current state"),
        (413, "Request body too large"),
        (415, "Request body not JSON"),
        (422, "Invalid input; the message names each field and value"),
        (503, "Prefect cannot be reached, or lacks the deployment"),
    )
}


STATUS: dict[type[BenchlibError], int] = {
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    Unavailable: 503,
    BenchlibError: 422,
}


class _HideUnexpected(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        try:
            return await call_next(request)
        except Exception as exc:
            where = traceback.extract_tb(exc.__traceback__)[-1]
            log.error(
                "unexpected %s on %s %s at %s:%s",
                type(exc).__name__,
                request.method,
                request.url.path,
                where.filename,
                where.lineno,
            )
            return JSONResponse(
                {"detail": "internal error; the server log says where"}, status_code=500
            )


def create_app(settings: ApiSettings) -> FastAPI:
    app = FastAPI(
        title="benchlib admin API",
        description="Trigger, follow, judge and read benchmarks. Every endpoint but "
        f"/api/health needs `Authorization: Bearer <{TOKEN_ENV}>`.",
        version="1",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.add_middleware(_HideUnexpected)
    app.add_middleware(Guard, settings=settings)  # the outermost: before anything is parsed

    @app.exception_handler(BenchlibError)
    async def user_error(_: Request, exc: BenchlibError) -> JSONResponse:
        """The CLI's message (without what a remote server answered); the status says which
        kind (bad input when nothing finer)."""
        status = next(code for kind, code in STATUS.items() if isinstance(exc, kind))
        detail = exc.public if isinstance(exc, RemoteAnswer) else str(exc)
        return JSONResponse({"detail": detail}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        # A body's fields are named as in a config file: `n_candidates`, not `body.n_candidates`.
        errors = [
            {**err, "loc": err["loc"][1:]} if err["loc"][:1] == ("body",) else err
            for err in exc.errors()
        ]
        return JSONResponse({"detail": describe_errors(errors, "request")}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"detail": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(LoginRequired)
    async def login(request: Request, _: LoginRequired) -> RedirectResponse:
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)

    @app.get("/api/health", tags=["service"])
    def health() -> dict[str, str]:
        """Unauthenticated: for load balancers and `benchlib stack status`."""
        return {"status": "ok"}

    authed = [Depends(require_token)]

    @app.get("/openapi.json", include_in_schema=False, dependencies=authed)
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=authed)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json", title=app.title, **pages.SWAGGER_URLS
        )

    for module in (experiments, runs, judging, fixtures):
        app.include_router(module.router, prefix="/api", dependencies=authed, responses=ERRORS)
    app.include_router(pages.router)
    return app
