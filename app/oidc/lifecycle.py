"""Start and stop the OIDC runtime with the app."""

from __future__ import annotations

from fastapi import FastAPI

from app.oidc.runtime import OidcRuntime


async def start_oidc(app: FastAPI) -> None:
    rt = OidcRuntime(app, app.state.runtime)
    app.state.oidc = rt
    await rt.start()


async def stop_oidc(app: FastAPI) -> None:
    rt: OidcRuntime | None = getattr(app.state, "oidc", None)
    if rt is not None:
        await rt.stop()
