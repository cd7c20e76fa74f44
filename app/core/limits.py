"""Limits on what a request may carry, answered with a 4xx before any work (DESIGN §6)."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_HEADER_BYTES = 16 * 1024


async def _reject(send: Send, status: int, description: str) -> None:
    body = json.dumps({"error": "invalid_request", "error_description": description,
                       "retryable": False}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class RequestLimitsMiddleware:
    """Body size (declared and streamed) and total header size; pure ASGI, no per-request cost
    beyond a length check for bodiless requests."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = None
        header_bytes = 0
        for name, value in scope["headers"]:
            header_bytes += len(name) + len(value)
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _reject(send, 400, "Invalid Content-Length")
                    return
        if header_bytes > MAX_HEADER_BYTES:
            await _reject(send, 431, "Request headers are too large")
            return
        if declared is not None and declared > self.max_body:
            await _reject(send, 413, f"The request body exceeds {self.max_body} bytes")
            return
        if scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE") and declared in (None, 0):
            await self.app(scope, receive, send)
            return

        received = 0
        too_large = False

        async def limited_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    too_large = True
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            await _reject(send, 413, f"The request body exceeds {self.max_body} bytes")


class _BodyTooLarge(Exception):
    pass
