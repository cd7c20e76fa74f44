"""The outermost request middleware: request id, metrics and the access log.

- The request id is the client's `X-Request-Id` when it is a sane token (1-80 of
  `A-Za-z0-9._:-`), else generated; it is echoed in the response, set in a contextvar for every
  log line and for each event's `trace` field (app/events/service.py).
- Requests are counted and timed by route *template* (`/v1/accounts/{account_id}`), so tenants'
  ids never become label values. A request that matched no route is `unmatched`.
- One access log line per request: method, route template, status, duration, principal id.
  Never the raw path, the query string or any header: those may carry credentials.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from app.observability.context import request_id_var
from app.observability.metrics import LATENCY, REQUESTS

access_log = logging.getLogger("authpi.access")
_VALID_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,80}")
_HEADER = b"x-request-id"
# Requests answered before routing (the fast paths) carry no route: their templates.
_TOKEN = re.compile(r"/[^/]+/token")


def _template(scope: dict[str, Any], status: int) -> str:
    """The matched route's template, rebuilt from the path and its parameters (which works however
    the routers were nested); `unmatched` when no route matched."""
    raw: str = scope.get("path", "")
    if scope.get("route") is not None:
        params = scope.get("path_params") or {}
        if not params:
            return raw
        names = {str(v): k for k, v in params.items()}
        return "/".join("{" + names[seg] + "}" if seg in names else seg for seg in raw.split("/"))
    if raw == "/v1/me":
        return "/v1/me"
    if _TOKEN.fullmatch(raw) and status != 404:
        return "/{issuer_id}/token"
    return "unmatched"


def _principal_id(scope: dict[str, Any]) -> str | None:
    state = scope.get("state")
    principal = state.get("principal") if isinstance(state, dict) else None
    if principal is None:
        return scope.get("authpi.principal_id")
    return getattr(principal, "actor_id", None)


class RequestObservability:
    def __init__(self, app: Any, *, access_log_enabled: bool = True) -> None:
        self.app = app
        self.access_log_enabled = access_log_enabled
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = None
        for name, value in scope["headers"]:
            if name == _HEADER:
                if _VALID_ID.fullmatch(value):
                    request_id = value.decode()
                break
        if request_id is None:
            request_id = uuid.uuid4().hex
        encoded = request_id.encode()
        token = request_id_var.set(request_id)
        status = 500
        start = time.perf_counter()

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", encoded)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            duration = time.perf_counter() - start
            method = scope["method"]
            route = _template(scope, status)
            key = (method, route, status)
            children = self._children.get(key)
            if children is None:
                children = (REQUESTS.labels(method, route, str(status)), LATENCY.labels(method, route))
                if len(self._children) < 5000:
                    self._children[key] = children
            children[0].inc()
            children[1].observe(duration)
            if self.access_log_enabled and access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    "%s %s %d", method, route, status,
                    extra={"access": True, "fields": {
                        "method": method, "route": route, "status": status,
                        "duration_ms": round(duration * 1000, 3), "principal": _principal_id(scope)}})
            request_id_var.reset(token)
