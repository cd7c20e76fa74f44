"""Start and stop the OIDC runtime with the app."""

from __future__ import annotations

from fastapi import FastAPI

from app.oidc import backchannel  # noqa: F401 - registers its outbox kind and session-end hook
from app.oidc.grants.hot import close_token_pool, open_token_pool
from app.oidc.runtime import OidcRuntime


async def start_oidc(app: FastAPI) -> None:
    rt = OidcRuntime(app, app.state.runtime)
    app.state.oidc = rt
    app.state.db.context["oidc"] = rt  # the session-end hooks sign with it (app.oidc.backchannel)
    await rt.start()
    app.state.token_pool = await open_token_pool(app.state.database_url, app.state.settings.token_pool_size)


async def stop_oidc(app: FastAPI) -> None:
    rt: OidcRuntime | None = getattr(app.state, "oidc", None)
    if rt is not None:
        await rt.stop()
        app.state.db.context.pop("oidc", None)
    await close_token_pool(getattr(app.state, "token_pool", None))
    app.state.token_pool = None
