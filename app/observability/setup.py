"""Wire observability into an app: the /metrics route, the request middleware, OpenTelemetry."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response

from app.observability.metrics import render, wire_existing
from app.observability.requests import RequestObservability
from app.observability.tracing import instrument_app


async def metrics_endpoint(request: Request) -> Response:
    body, content_type = await render(request.app)
    return Response(body, media_type=content_type)


def install(app: FastAPI) -> None:
    """Call after every other middleware is added: the request middleware is then outermost."""
    settings = app.state.settings
    wire_existing(app)
    if settings.metrics_enabled:
        app.add_api_route("/metrics", metrics_endpoint, methods=["GET"], include_in_schema=False)
    instrument_app(app)
    app.add_middleware(RequestObservability, access_log_enabled=settings.access_log)
