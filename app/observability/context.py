"""The request id of the request being served, for logs and each event's `trace` field.

A contextvar: set by the request middleware, read anywhere below it in the same task (and in tasks
it starts, which copy the context). Nothing here imports the rest of the app.
"""

from __future__ import annotations

from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("authpi_request_id", default=None)


def current_request_id() -> str | None:
    return request_id_var.get()
