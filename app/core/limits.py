"""Limits on what a request may carry, answered with a 4xx before any work (DESIGN §6)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import ApiError, BadRequest, HeadersTooLarge, PayloadTooLarge, error_response

MAX_HEADER_BYTES = 16 * 1024


async def _reject(scope: Scope, receive: Receive, send: Send, error: ApiError) -> None:
    await error_response(error)(scope, receive, send)


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
                    await _reject(scope, receive, send, BadRequest("Invalid Content-Length"))
                    return
        if header_bytes > MAX_HEADER_BYTES:
            await _reject(scope, receive, send, HeadersTooLarge("Request headers are too large"))
            return
        if declared is not None and declared > self.max_body:
            await _reject(scope, receive, send,
                          PayloadTooLarge(f"The request body exceeds {self.max_body} bytes"))
            return
        if scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE") and declared in (None, 0):
            await self.app(scope, receive, send)
            return

        received = 0
        rejected = False

        async def limited_receive() -> Message:
            nonlocal received, rejected
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body and not rejected:
                    # Answer now: the app sees an error while reading (FastAPI would turn it into
                    # its own 400), and whatever it sends after this is dropped.
                    rejected = True
                    await _reject(scope, receive, send,
                                  PayloadTooLarge(f"The request body exceeds {self.max_body} bytes"))
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            if not rejected:
                await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _BodyTooLarge:
            pass


class _BodyTooLarge(Exception):
    pass
