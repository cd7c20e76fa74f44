"""The ApiError family and the one place that renders the contract's error body (SDK-CONTRACT §1.6)."""

from __future__ import annotations

import asyncio
import errno
import logging
import re
import socket
from collections.abc import Callable
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("authpi.errors")
# What a 503 asks the client to wait: a restarting database is usually back within seconds.
RETRY_AFTER_SECONDS = 2


class FieldError(dict):
    def __init__(self, field: str, code: str, message: str) -> None:
        super().__init__(field=field, code=code, message=message)


class ApiError(Exception):
    """A refusal in the contract's error shape. A kind of refusal names its answer where it is
    declared: `class NotFound(ApiError, status=404, error="not_found")`."""

    status_code = 500
    error = "server_error"
    retryable = False

    def __init_subclass__(cls, *, status: int | None = None, error: str | None = None,
                          retryable: bool | None = None, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if status is not None:
            cls.status_code = status
        if error is not None:
            cls.error = error
        if retryable is not None:
            cls.retryable = retryable

    def __init__(
        self,
        description: str | None = None,
        *,
        fields: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(description or self.error)
        self.description = description or self.error
        self.fields = fields
        self.headers = headers or {}
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "error": self.error,
            "error_description": self.description,
            "retryable": self.retryable,
        }
        if self.fields is not None:
            body["fields"] = list(self.fields)
        body.update(self.extra)
        return body


class BadRequest(ApiError, status=400, error="invalid_request"):
    pass


class ValidationFailed(ApiError, status=422, error="invalid_request"):
    def __init__(self, description: str, *, field: str | None = None, code: str = "invalid", **kw: Any):
        if field is not None and "fields" not in kw:
            kw["fields"] = [FieldError(field, code, description)]
        kw.setdefault("fields", [])
        super().__init__(description, **kw)


class Unauthorized(ApiError, status=401, error="unauthorized"):
    def __init__(self, description: str = "Missing or invalid credentials", **kw: Any) -> None:
        kw.setdefault("headers", {"WWW-Authenticate": 'Basic realm="authpi", Bearer'})
        super().__init__(description, **kw)


class Forbidden(ApiError, status=403, error="access_denied"):
    pass


class InsufficientScope(Forbidden, error="insufficient_scope"):
    pass


class NotFound(ApiError, status=404, error="not_found"):
    def __init__(self, what: str = "resource", **kw: Any) -> None:
        super().__init__(f"The {what} was not found", **kw)


class Conflict(ApiError, status=409, error="conflict"):
    pass


class PreconditionFailed(ApiError, status=412, error="precondition_failed"):
    def __init__(self, current_etag: str) -> None:
        # The SDK reads current_etag; the docs show currentETag: send both.
        super().__init__(
            "If-Match does not match the current ETag",
            extra={"current_etag": current_etag, "currentETag": current_etag},
        )


class PayloadTooLarge(ApiError, status=413, error="invalid_request"):
    pass


class HeadersTooLarge(ApiError, status=431, error="invalid_request"):
    pass


class TooManyRequests(ApiError, status=429, error="rate_limited", retryable=True):
    def __init__(self, retry_after: int, description: str = "Too many requests") -> None:
        retry_after = max(1, int(retry_after))
        super().__init__(
            description, headers={"Retry-After": str(retry_after)}, extra={"retry_after": retry_after}
        )


class ServiceUnavailable(ApiError, status=503, error="service_unavailable", retryable=True):
    """The database (or another dependency) cannot be reached: worth retrying shortly."""

    def __init__(self, description: str = "The service is temporarily unavailable; retry shortly",
                 retry_after: int = RETRY_AFTER_SECONDS) -> None:
        super().__init__(description, headers={"Retry-After": str(retry_after)},
                         extra={"retry_after": retry_after})


_CONNECTION_ERRNOS = {errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.EHOSTUNREACH,
                      errno.ENETUNREACH, errno.ETIMEDOUT, errno.EPIPE}


def _connection_oserror(exc: OSError) -> bool:
    # asyncio reports a failed connect to every address of a host as one plain OSError.
    return (isinstance(exc, (ConnectionError, TimeoutError, socket.gaierror))
            or exc.errno in _CONNECTION_ERRNOS or str(exc).startswith("Multiple exceptions"))


def database_unavailable(exc: BaseException) -> bool:
    """True when `exc` (or what caused it) says the database could not be reached or dropped the
    connection, as opposed to refusing a statement: the request may succeed if retried."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, OSError) and _connection_oserror(current):
            return True
        if isinstance(current, (DisconnectionError, PoolTimeout, asyncio.TimeoutError,
                                asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError,
                                asyncpg.ConnectionDoesNotExistError, asyncpg.TooManyConnectionsError,
                                asyncpg.AdminShutdownError, asyncpg.CrashShutdownError)):
            return True
        if isinstance(current, asyncpg.InterfaceError) and "closed" in str(current):
            return True
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return False


def unexpected_error(exc: BaseException) -> ApiError:
    """What an exception nobody handled becomes: 503 when the database is away, else 500 (logged)."""
    if isinstance(exc, ApiError):
        return exc
    if database_unavailable(exc):
        log.warning("database unavailable: %s", type(exc).__name__)
        return ServiceUnavailable()
    log.error("unhandled error: %s", type(exc).__name__, exc_info=exc)
    return ApiError("An internal error occurred")


class ErrorBoundaryMiddleware:
    """Outermost: an exception that escaped everything becomes an answer here and is not re-raised.

    Starlette's own last handler re-raises after answering, and the server then closes the
    connection: the next request on that keep-alive connection was reset. `render` may answer some
    paths in another shape (the OAuth endpoints answer RFC 6749 errors).
    """

    def __init__(self, app: ASGIApp,
                 render: Callable[[Scope, BaseException], Response | None] | None = None) -> None:
        self.app = app
        self.render = render

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:
                raise
            response = self.render(scope, exc) if self.render is not None else None
            if response is None:
                response = error_response(unexpected_error(exc))
            await response(scope, receive, send)


def error_response(exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers)


def _loc_to_field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def validation_fields(errors: list[dict[str, Any]]) -> list[FieldError]:
    return [
        FieldError(_loc_to_field(e.get("loc", ())), str(e.get("type", "invalid")), str(e.get("msg", "")))
        for e in errors
    ]


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _documented_paths(app: Any) -> list[tuple[re.Pattern[str], int, set[str]]]:
    """(path regex, number of parameters, methods) of every documented path, built once."""
    cached = getattr(app.state, "allow_paths", None)
    if cached is None:
        cached = []
        for template, operations in app.openapi().get("paths", {}).items():
            params = re.findall(r"{[^}]+}", template)
            pattern = re.escape(template)
            for p in params:
                pattern = pattern.replace(re.escape(p), "[^/]+")
            cached.append((re.compile(pattern), len(params), {m.upper() for m in operations}))
        app.state.allow_paths = cached
    return cached


def allowed_methods(request: Request) -> str:
    """Every method some route fully matches for this path (routers nest: ask them, per method),
    narrowed to the most literal documented path where paths overlap: `/notes/count` is the
    literal route's, not also `/notes/{note_id}`'s, since a literal segment wins over a parameter."""
    routes = request.app.router.routes
    allowed = [method for method in _METHODS
               if any(route.matches({**request.scope, "method": method})[0] == Match.FULL
                      for route in routes)]
    matches = [(n, methods) for pattern, n, methods in _documented_paths(request.app)
               if pattern.fullmatch(request.url.path)]
    if matches:
        fewest = min(n for n, _ in matches)
        documented = set().union(*(methods for n, methods in matches if n == fewest))
        allowed = [m for m in allowed if m in documented or (m == "HEAD" and "GET" in documented)]
    return ", ".join(allowed)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = validation_fields(list(exc.errors()))
        body_missing = any(e.get("type") == "missing" and tuple(e.get("loc", ())) == ("body",)
                           for e in exc.errors())
        err = ValidationFailed("A request body is required" if body_missing else "The request is invalid",
                               fields=fields)
        return error_response(err)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 403: "access_denied"}
        err = ApiError(str(exc.detail) if exc.detail else None)
        err.status_code = exc.status_code
        err.error = codes.get(exc.status_code, "invalid_request")
        err.description = str(exc.detail)
        err.headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Allow (RFC 9110 §15.5.6) names every method of the path, not only those of the first
            # route that matched it (Starlette's own header).
            err.headers["Allow"] = allowed_methods(request) or err.headers.get("Allow", "")
        return error_response(err)

    @app.exception_handler(Exception)
    async def _unhandled(_: Request, exc: Exception) -> JSONResponse:
        # Never leak a stack trace or internals; the log carries the detail.
        return error_response(unexpected_error(exc))
