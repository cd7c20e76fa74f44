"""A direct route for `GET /v1/me`, the hot path.

Matching a request against every /v1 route and solving FastAPI's dependencies cost more than the
verification itself (profiled: about half of a warm /v1/me). This ASGI wrapper serves every
`GET /v1/me` without routing: a Basic credential already verified and cached (see
verification.KeyVerifier.warm) is answered here, with the same body, the same `api-key.verified`
event and the same checks, as are refusals that need no database; anything else (a miss, Bearer,
an out-of-allowlist address, ...) goes to the endpoint function itself, which gives the normal
answer. The request limits middleware stays outside it.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request

from app.api_key.endpoints import get_me
from app.api_key.verification import (
    MAX_SECRET_LENGTH,
    address_allowed,
    scope_address,
    yield_to_invalidations,
)
from app.core.auth import MAX_AUTH_HEADER, split_basic
from app.core.errors import ApiError, error_response, unexpected_error

log = logging.getLogger("authpi.api_key")
_HEADERS = [(b"content-type", b"application/json")]


class MeFastPath:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/v1/me" and scope["method"] == "GET":
            if not await self._serve(scope, receive, send):
                await self._endpoint(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _endpoint(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Every other /v1/me (cold, refused, Bearer): the endpoint itself, without routing."""
        request = Request(scope, receive)
        try:
            response = await get_me(request)
        except ApiError as exc:
            response = error_response(exc)
        except Exception as exc:  # noqa: BLE001 - never a stack trace in a response
            response = error_response(unexpected_error(exc))
        await response(scope, receive, send)

    async def _serve(self, scope: dict[str, Any], receive: Any, send: Any) -> bool:
        verifier = getattr(scope["app"].state, "key_verifier", None)
        if verifier is None:
            return False
        header = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                header = value
                break
        if header is None or len(header) > MAX_AUTH_HEADER or header[:6].lower() != b"basic ":
            return False
        parts = split_basic(header[6:])
        if parts is None:
            return False
        key_id, secret = parts
        if not key_id or not secret or len(secret) > MAX_SECRET_LENGTH:
            return False
        await yield_to_invalidations()
        entry = verifier.warm(key_id, verifier.mac(secret))
        address = scope_address(scope, verifier.settings.trust_proxy_headers)
        if entry is None:
            # A flood of bad credentials must cost about what a warm hit costs: the refusals that
            # need no database are answered here too (the same bodies as the normal stack's).
            refusal = verifier.refuse_early(key_id, secret, address)
            if refusal is None:
                return False
            await verifier.slow_down(refusal)
            await error_response(refusal)(scope, receive, send)
            return True
        if entry.networks is not None and not address_allowed(entry.networks, address):
            return False
        verifier.record_verified(entry, address)
        body = entry.me_body
        await send({"type": "http.response.start", "status": 200,
                    "headers": [*_HEADERS, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
        return True
