"""OpenTelemetry tracing: off unless the standard OTEL_* variables ask for it.

On when `OTEL_TRACES_EXPORTER` names an exporter (`otlp`, `console`) or an OTLP endpoint is set
(`OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`); `OTEL_SDK_DISABLED=true`
or `OTEL_TRACES_EXPORTER=none` keeps it off. Everything else (service name, resource attributes,
sampler, batch sizes, headers, protocol) is read by the SDK from its own OTEL_* variables. Spans:
FastAPI (every request), asyncpg (every query), httpx (webhook deliveries and other outbound
calls). The packages are the `otel` extra; without them, asking for tracing is a startup error.
"""

from __future__ import annotations

import logging
import os
from typing import Any

log = logging.getLogger("authpi.tracing")
_configured = False


def tracing_requested(environ: dict[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    return bool(exporter or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def _exporters() -> list[Any]:
    wanted = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").lower()
    names = [n.strip() for n in wanted.split(",") if n.strip()]
    out: list[Any] = []
    for name in names:
        if name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            out.append(ConsoleSpanExporter())
        elif name == "otlp":
            protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                                      os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"))
            if protocol == "grpc":
                from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[import-not-found]
                    OTLPSpanExporter,
                )
            else:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            out.append(OTLPSpanExporter())
        else:
            raise ValueError(f"OTEL_TRACES_EXPORTER={name!r} is not supported (otlp, console or none)")
    return out


def configure_tracer_provider() -> None:
    """The process's tracer provider and the asyncpg/httpx instrumentations (once per process)."""
    global _configured
    if _configured:
        return
    from opentelemetry import trace
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "authpi")})
    provider = TracerProvider(resource=resource)
    for exporter in _exporters():
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    AsyncPGInstrumentor().instrument()
    HTTPXClientInstrumentor().instrument()
    _configured = True
    log.info("OpenTelemetry tracing on")


def instrument_app(app: Any) -> bool:
    """Instrument this FastAPI app when tracing is requested; returns whether it was."""
    if not tracing_requested():
        return False
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    configure_tracer_provider()
    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics")
    app.state.tracing = True
    return True
