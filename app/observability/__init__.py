"""Operability: Prometheus metrics, JSON logs with request ids, the access log, OpenTelemetry.

`install(app)` wires it all into an app built by `create_app`; `configure_logging(settings)` is
called once per process by the CLI.
"""

from __future__ import annotations

from app.observability.context import current_request_id, request_id_var
from app.observability.logs import configure_logging
from app.observability.setup import install

__all__ = ["configure_logging", "current_request_id", "install", "request_id_var"]
