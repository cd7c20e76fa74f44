"""Start and stop the OIDC runtime's background pieces with the app."""

from __future__ import annotations

from fastapi import FastAPI

from app.oidc.cache import InvalidationListener, runtime


async def start_oidc(app: FastAPI) -> None:
    rt = runtime(app)
    rt.listener = InvalidationListener(app)
    rt.listener.start()
    await rt.start()


async def stop_oidc(app: FastAPI) -> None:
    rt = runtime(app)
    listener = getattr(rt, "listener", None)
    if listener is not None:
        await listener.stop()
    await rt.stop()
