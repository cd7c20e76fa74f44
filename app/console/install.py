"""Mount the console, its static assets and the offline docs on the app."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from app.console.auth_pages import router as auth_router
from app.console.docs import install_docs
from app.console.more_pages import router as more_router
from app.console.pages import router as pages_router
from app.console.trail_pages import router as trail_router
from app.console.web import HERE, ConsoleRefusal, refusal_page


def install_console(app: FastAPI) -> None:
    """Register /docs, /redoc and /console on `app` (before the issuers' catch-all routes)."""
    install_docs(app)
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")
    app.include_router(auth_router)
    app.include_router(more_router)  # its /new pages before the /{id} pages
    app.include_router(trail_router)
    app.include_router(pages_router)

    async def _refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ConsoleRefusal)
        return refusal_page(request, exc)

    app.add_exception_handler(ConsoleRefusal, _refused)
