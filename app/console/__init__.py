"""The operator console (/console) and the offline API docs: a presentation layer over the services.

Resource packages never import this package.
"""

from __future__ import annotations

from fastapi import FastAPI


def install_console(app: FastAPI) -> None:
    """Register /docs, /redoc and /console on `app` (before the issuers' catch-all routes)."""
    from app.console.docs import install_docs

    install_docs(app)
