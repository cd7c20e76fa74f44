"""The webhook relay's HTTP client: httpx, with a transport that pins each connection to an address
that passed the private-address check.

httpx resolves a name when it connects. Checking the name first and letting httpx resolve it again
would leave a window for DNS rebinding (a public answer for the check, a private one for the
connect). So the transport's network backend does the resolution itself: it resolves once
(`url_safety.resolve_public`, which refuses when any answer is not public), then connects to one of
those checked addresses. TLS still verifies the certificate against the URL's host name (httpcore
passes it as the server name), and the Host header is the URL's.
"""

from __future__ import annotations

import asyncio
import importlib
import ssl
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from app.webhooks.url_safety import UnsafeTarget, resolve_public

KEEPALIVE_SECONDS = 5.0

Resolver = Callable[[str, int], Awaitable[list[str]]]


class HttpError(Exception):
    """The exchange failed (connection, protocol); the message is safe to record."""


@dataclass
class Response:
    status: int
    body: bytes


def _pinned_transport_class(httpx_module: Any, httpcore_module: Any) -> type:
    """httpx's own transport, its connection pool built over a backend that connects only to
    addresses `resolve` returned (all checked) and never re-resolves the name. Built for a given
    httpx/httpcore pair, since authlib's client runs on httpx2/httpcore2 where those are installed."""

    class PinnedBackend(httpcore_module.AsyncNetworkBackend):  # type: ignore[name-defined,misc]
        def __init__(self, resolve: Resolver | None) -> None:
            self._resolve = resolve
            self._inner = httpcore_module.AnyIOBackend()

        async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                              local_address: str | None = None,
                              socket_options: Iterable[Any] | None = None) -> Any:
            addresses = [host] if self._resolve is None else await self._resolve(host, port)
            error: Exception | None = None
            for address in addresses:
                try:
                    return await self._inner.connect_tcp(address, port, timeout=timeout,
                                                         local_address=local_address,
                                                         socket_options=socket_options)
                except (httpcore_module.ConnectError, httpcore_module.ConnectTimeout) as exc:
                    error = exc
            assert error is not None
            raise error

        async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                      socket_options: Iterable[Any] | None = None) -> Any:
            raise httpcore_module.ConnectError("unix sockets are not webhook targets")

        async def sleep(self, seconds: float) -> None:
            await self._inner.sleep(seconds)

    class PinnedTransport(httpx_module.AsyncHTTPTransport):  # type: ignore[name-defined,misc]
        # httpx offers no parameter for a network backend, so the pool it built is replaced by the
        # same pool with one.
        def __init__(self, *, resolve: Resolver | None, ssl_context: ssl.SSLContext,
                     max_connections: int, max_keepalive: int) -> None:
            super().__init__(verify=ssl_context, trust_env=False)
            self._pool = httpcore_module.AsyncConnectionPool(
                ssl_context=ssl_context, max_connections=max_connections,
                max_keepalive_connections=max_keepalive, keepalive_expiry=KEEPALIVE_SECONDS,
                http1=True, http2=False, network_backend=PinnedBackend(resolve))

    return PinnedTransport


PinnedTransport = _pinned_transport_class(httpx, httpcore)
_TRANSPORTS: dict[str, type] = {"httpx": PinnedTransport}


def guarded_transport(*, allow_private: bool, ssl_context: ssl.SSLContext | None = None,
                      max_connections: int = 16, httpx_module: Any = httpx) -> Any:
    """An httpx transport under the private-address rules (lifted by allow_private): for any
    tenant-supplied URL the server fetches (webhooks, and federation's discovery, JWKS, tokens)."""
    name = httpx_module.__name__
    if name not in _TRANSPORTS:  # httpx2 goes with httpcore2
        _TRANSPORTS[name] = _pinned_transport_class(
            httpx_module, importlib.import_module(name.replace("httpx", "httpcore")))
    return _TRANSPORTS[name](resolve=None if allow_private else resolve_public,
                             ssl_context=ssl_context or ssl.create_default_context(),
                             max_connections=max_connections, max_keepalive=max_connections)


class Client:
    """POSTs with no redirects, no proxies from the environment, and bounded response bodies."""

    def __init__(self, *, allow_private: bool, per_origin: int = 8, max_connections: int = 256,
                 ssl_context: ssl.SSLContext | None = None, resolve: Resolver | None = None) -> None:
        # The system trust store, hostname checked; tests inject a context trusting their own CA.
        context = ssl_context or ssl.create_default_context()
        if resolve is None and not allow_private:
            resolve = resolve_public
        self._http = httpx.AsyncClient(
            transport=PinnedTransport(resolve=resolve, ssl_context=context, max_connections=max_connections,
                                      max_keepalive=max_connections),
            follow_redirects=False, trust_env=False, timeout=None)
        self.per_origin = per_origin
        # At most per_origin requests in flight per receiver: a batch does not hit one endpoint
        # all at once (the pool's limit is global).
        self._slots: OrderedDict[tuple[str, str, int | None], asyncio.Semaphore] = OrderedDict()

    def _slot(self, url: str) -> asyncio.Semaphore:
        parts = urlsplit(url)
        key = (parts.scheme, (parts.hostname or "").lower(), parts.port)
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = asyncio.Semaphore(self.per_origin)
            if len(self._slots) > 1024:
                self._slots.popitem(last=False)
        self._slots.move_to_end(key)
        return slot

    async def post(self, url: str, headers: dict[str, str], body: bytes, *, max_body: int) -> Response:
        """POST and return the status and at most max_body bytes of the response body. The caller
        bounds the whole exchange with a timeout; cancellation closes the connection."""
        try:
            async with self._slot(url), self._http.stream("POST", url, headers=headers,
                                                          content=body) as response:
                out = bytearray()
                async for chunk in response.aiter_raw():
                    out += chunk
                    if len(out) >= max_body:
                        break  # the rest is not read: the connection is closed, not reused
                return Response(response.status_code, bytes(out[:max_body]))
        except UnsafeTarget:
            raise
        except httpx.ConnectError as exc:
            raise HttpError(f"connect failed: {exc}"[:300]) from exc
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            raise HttpError(f"{type(exc).__name__}: {exc}"[:300]) from exc

    async def aclose(self) -> None:
        await self._http.aclose()


__all__ = ["Client", "HttpError", "PinnedTransport", "Response", "UnsafeTarget",
           "guarded_transport"]
