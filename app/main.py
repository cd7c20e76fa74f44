"""create_app(settings): the one place that assembles the server."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.api import api_router
from app.api_key import verification
from app.api_key.fastpath import MeFastPath
from app.config import Settings, get_settings
from app.core.auth import CredentialVerifiers
from app.core.db import Database
from app.core.errors import install_error_handlers
from app.core.idempotency import IdempotencyMiddleware
from app.core.limits import RequestLimitsMiddleware
from app.core.migrations import script_heads
from app.health.endpoints import router as health_router
from app.lifecycle import shutdown, startup
from app.observability import install as install_observability
from app.oidc.fastpath import TokenFastPath
from app.oidc.router import oidc_router
from app.oidc.verify import verify_bearer
from app.user.tokens import with_personal_tokens

log = logging.getLogger("authpi")


def create_app(settings: Settings | None = None, *, database_url: str | None = None) -> FastAPI:
    """Build the ASGI app. `database_url` must point at a migrated database."""
    settings = settings or get_settings()
    url = database_url or settings.database_url
    if not url:
        raise RuntimeError("create_app needs a database URL (the CLI starts the embedded one)")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.db = Database(url, settings.db_pool_size)
        await startup(app)
        try:
            yield
        finally:
            await shutdown(app)
            await app.state.db.dispose()

    app = FastAPI(title="authpi", version="0.1.0", lifespan=lifespan,
                  docs_url="/docs", redoc_url=None, openapi_url="/openapi.json")
    app.state.settings = settings
    app.state.database_url = url
    app.state.secret_key = settings.resolved_secret_key()
    app.state.schema_heads = script_heads()
    # Basic: API keys. Bearer: issuers' JWT access tokens; `tok_...` values are personal tokens.
    app.state.verifiers = CredentialVerifiers(basic=verification.verify_basic,
                                              bearer=with_personal_tokens(verify_bearer))

    install_error_handlers(app)
    # Added innermost first. The two fast paths answer the hot requests (a warm GET /v1/me, POST
    # /{issuer}/token) before routing, which costs more than their work; the request limits stay
    # outermost so that nothing, fast path included, reads an oversize request.
    app.add_middleware(IdempotencyMiddleware)
    app.add_middleware(MeFastPath)
    app.add_middleware(TokenFastPath)
    app.add_middleware(RequestLimitsMiddleware, max_body_bytes=settings.max_body_bytes)
    # Outermost: request id, metrics, access log (and /metrics, OpenTelemetry when asked for).
    install_observability(app)

    app.include_router(health_router)
    app.include_router(api_router)
    # After /v1 and health: /{issuer_id}/... would otherwise shadow them.
    app.include_router(oidc_router)
    return app
