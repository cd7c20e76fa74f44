"""create_app(settings): the one place that assembles the server."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.api import api_router
from app.api_key import verification
from app.api_key.endpoints import get_me
from app.config import Settings, get_settings
from app.console.install import install_console
from app.core.auth import CredentialVerifiers
from app.core.db import Database
from app.core.edge import EdgeValidationMiddleware
from app.core.errors import ErrorBoundaryMiddleware, install_error_handlers
from app.core.idempotency import IdempotencyMiddleware
from app.core.limits import RequestLimitsMiddleware
from app.core.logredact import install_log_redaction
from app.core.migrations import script_heads
from app.federation.pages import router as federation_router
from app.health.endpoints import router as health_router
from app.hosted.invitation_pages import router as invitation_router
from app.hosted.pages import router as hosted_router
from app.hosted.passkey_pages import router as passkey_router
from app.lifecycle import shutdown, startup
from app.observability import install as install_observability
from app.oidc.endpoints.token import token
from app.oidc.errors import render_unexpected
from app.oidc.router import oidc_router
from app.oidc.verify import verify_bearer
from app.user.tokens import with_personal_tokens

log = logging.getLogger("authpi")


def create_app(settings: Settings | None = None, *, database_url: str | None = None) -> FastAPI:
    """Build the ASGI app. `database_url` must point at a migrated database."""
    settings = settings or get_settings()
    install_log_redaction()
    url = database_url or settings.database_url
    if not url:
        raise RuntimeError("create_app needs a database URL (the CLI starts the embedded one)")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.db = Database(url, settings.db_pool_size, settings.db_connect_timeout_seconds)
        await startup(app)
        try:
            yield
        finally:
            await shutdown(app)
            await app.state.db.dispose()

    app = FastAPI(title="authpi", version="0.1.0", lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url="/openapi.json")
    app.state.settings = settings
    app.state.database_url = url
    app.state.secret_key = settings.resolved_secret_key()
    app.state.schema_heads = script_heads()
    # Basic: API keys. Bearer: issuers' JWT access tokens; `tok_...` values are personal tokens.
    app.state.verifiers = CredentialVerifiers(basic=verification.verify_basic,
                                              bearer=with_personal_tokens(verify_bearer))

    install_error_handlers(app)
    # Added innermost first: the request limits stay outermost, so nothing reads an oversize request.
    app.add_middleware(IdempotencyMiddleware)
    app.add_middleware(EdgeValidationMiddleware)
    app.add_middleware(RequestLimitsMiddleware, max_body_bytes=settings.max_body_bytes)
    # Outermost: whatever escaped becomes an answer (503 when the database is away) and the
    # connection stays usable.
    app.add_middleware(ErrorBoundaryMiddleware, render=render_unexpected)
    # Outermost: request id, metrics, access log (and /metrics, OpenTelemetry when asked for).
    install_observability(app)

    app.include_router(health_router)
    app.include_router(api_router)
    install_console(app)  # /console, offline /docs and /redoc
    # After /v1 and health: /{issuer_id}/... would otherwise shadow them.
    app.include_router(oidc_router)
    app.include_router(hosted_router)
    app.include_router(invitation_router)
    app.include_router(passkey_router)
    app.include_router(federation_router)
    hot_routes_first(app, [("/v1/me", "GET", get_me), ("/{issuer_id}/token", "POST", token)])
    return app


def hot_routes_first(app: FastAPI, hot: list[tuple[str, str, Callable[..., Awaitable[Response]]]]
                     ) -> None:
    """Serve the hot paths through plain Starlette routes at the head of the route list.

    Matching a request against ~150 routes and solving FastAPI's dependencies cost more than a warm
    `GET /v1/me` itself. These routes call the very same endpoint functions (the verification
    exists once, in the verifier), inside the same middleware (request limits) and exception
    handlers as every route; the FastAPI routes they shadow stay in place, so both stay documented
    in /openapi.json. Nothing else can be shadowed: `/{issuer_id}/token` is POST-only and no /v1
    route ends in /token.
    """
    app.router.routes[:0] = [Route(path, _plain(endpoint), methods=[method], include_in_schema=False,
                                   name=f"{endpoint.__name__}_hot") for path, method, endpoint in hot]


def _plain(endpoint: Callable[..., Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint taking (path params..., request) as a Starlette endpoint taking the request."""
    async def call(request: Request) -> Response:
        return await endpoint(request=request, **request.path_params)
    return call
