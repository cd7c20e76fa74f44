"""uvicorn's httptools protocol with the two deadlines it lacks: slow clients are dropped.

uvicorn times out an idle keep-alive connection, but not a request in progress: a client that
sends its headers one byte at a time (or never finishes its body) holds a socket and a parser
forever (1,000 half-sent requests held 1,000 sockets for over 200 s). Here:

- from the moment a connection opens, or a request's first byte arrives, its headers must be
  complete within `header_timeout` seconds;
- from the end of the headers, its body must be complete within `body_timeout` seconds.

Past a deadline the client gets `408` in the contract's error shape (if no response has started)
and the connection is closed. The time the app takes to answer is not bounded here.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.config import get_settings

_BODY = json.dumps({"error": "request_timeout", "retryable": True,
                    "error_description": "The request was not received in time"}).encode()
_RESPONSE = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
             b"content-length: " + str(len(_BODY)).encode() + b"\r\n\r\n" + _BODY)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    header_timeout: float = 5.0
    body_timeout: float = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None

    def _arm(self, delay: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(delay, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is None or not self.cycle.response_started:
            self.transport.write(_RESPONSE)
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm(self.header_timeout)

    def on_headers_complete(self) -> None:
        self._arm(self.body_timeout)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def guarded_protocol(header_timeout: float, body_timeout: float) -> type[GuardedHttpToolsProtocol]:
    """The protocol class to give uvicorn (`http=`), with these deadlines."""
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,),
                {"header_timeout": header_timeout, "body_timeout": body_timeout})


class SettingsGuardedProtocol(GuardedHttpToolsProtocol):
    """The same protocol by import string, for `serve --workers N`: uvicorn pickles its config into
    each worker, and a class made by guarded_protocol() cannot be pickled. The deadlines come from
    the worker's own settings (the parent's environment)."""

    @property  # type: ignore[override]
    def header_timeout(self) -> float:
        return get_settings().header_timeout_seconds

    @property  # type: ignore[override]
    def body_timeout(self) -> float:
        return get_settings().body_timeout_seconds
