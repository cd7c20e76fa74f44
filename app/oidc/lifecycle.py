"""Start and stop the OIDC runtime's background pieces with the app."""

from __future__ import annotations

from fastapi import FastAPI

from app.oidc.cache import InvalidationListener, runtime
from app.oidc.grants.hot import close_token_pool, open_token_pool


async def start_oidc(app: FastAPI) -> None:
    rt = runtime(app)
    rt.listener = InvalidationListener(app)
    rt.listener.start()
    await rt.start()
    app.state.token_pool = await open_token_pool(app.state.database_url, app.state.settings.token_pool_size)


async def stop_oidc(app: FastAPI) -> None:
    rt = runtime(app)
    listener = getattr(rt, "listener", None)
    if listener is not None:
        await listener.stop()
    await rt.stop()
    await close_token_pool(getattr(app.state, "token_pool", None))
    app.state.token_pool = None
