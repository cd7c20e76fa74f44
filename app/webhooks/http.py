"""A small HTTP/1.1 client for webhook POSTs, on asyncio streams.

Why not httpx here: profiling the relay showed httpx/httpcore costing ~1 ms of CPU per request
(pool bookkeeping, per-request event-loop detection), most of the relay's time. Webhook delivery
needs little: one POST, the status, a bounded slice of the body, keep-alive. Owning the connect
step also makes the address check exact: the address we check is the address we connect to.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import OrderedDict, deque
from dataclasses import dataclass
from urllib.parse import urlsplit

from app.webhooks.url_safety import UnsafeTarget, resolve_public

MAX_HEADER_BYTES = 16 * 1024
KEEPALIVE_SECONDS = 5.0


class HttpError(Exception):
    """The exchange failed (connection, protocol); the message is safe to record."""


@dataclass
class Response:
    status: int
    body: bytes


@dataclass
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0

    def close(self) -> None:
        self.writer.close()


class Origin:
    """Idle keep-alive connections to one scheme://host:port, and a cap on requests in flight."""

    def __init__(self, scheme: str, host: str, port: int, limit: int) -> None:
        self.scheme, self.host, self.port = scheme, host, port
        self.idle: deque[_Conn] = deque()
        self.slots = asyncio.Semaphore(limit)

    def close(self) -> None:
        while self.idle:
            self.idle.popleft().close()


class Client:
    def __init__(self, *, allow_private: bool, per_origin: int = 8, max_origins: int = 256,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.allow_private = allow_private
        self.per_origin = per_origin
        self.max_origins = max_origins
        self._origins: OrderedDict[tuple[str, str, int], Origin] = OrderedDict()
        # The system trust store, hostname checked; tests inject a context trusting their own CA.
        self._ssl = ssl_context

    def _origin(self, scheme: str, host: str, port: int) -> Origin:
        key = (scheme, host, port)
        origin = self._origins.get(key)
        if origin is None:
            origin = self._origins[key] = Origin(scheme, host, port, self.per_origin)
            while len(self._origins) > self.max_origins:
                self._origins.popitem(last=False)[1].close()
        self._origins.move_to_end(key)
        return origin

    async def _connect(self, origin: Origin) -> _Conn:
        address = origin.host
        if not self.allow_private:
            address = (await resolve_public(origin.host, origin.port))[0]
        tls = None
        if origin.scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            tls = self._ssl
        try:
            reader, writer = await asyncio.open_connection(
                address, origin.port, ssl=tls, server_hostname=origin.host if tls else None,
                limit=MAX_HEADER_BYTES)
        except (OSError, ssl.SSLError) as exc:
            raise HttpError(f"connect failed: {type(exc).__name__}: {exc}") from exc
        return _Conn(reader, writer)

    def _checkout(self, origin: Origin) -> _Conn | None:
        loop = asyncio.get_running_loop()
        while origin.idle:
            conn = origin.idle.pop()
            if (loop.time() - conn.idle_since < KEEPALIVE_SECONDS and not conn.writer.is_closing()
                    and not conn.reader.at_eof()):
                return conn
            conn.close()
        return None

    async def post(self, url: str, headers: dict[str, str], body: bytes, *, max_body: int) -> Response:
        """POST and return the status and at most max_body bytes of the response body.
        The caller bounds the whole exchange with a timeout; cancellation closes the connection."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise HttpError("not an http(s) URL")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        origin = self._origin(parts.scheme, parts.hostname, port)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host_header = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        if ":" in parts.hostname and parts.port is None:
            host_header = f"[{parts.hostname}]"
        lines = [f"POST {target} HTTP/1.1", f"host: {host_header}", f"content-length: {len(body)}",
                 "connection: keep-alive"]
        for name, value in headers.items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                raise HttpError("invalid header")
            lines.append(f"{name}: {value}")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        async with origin.slots:
            conn = self._checkout(origin)
            reused = conn is not None
            if conn is None:
                conn = await self._connect(origin)
            try:
                try:
                    response, keep = await self._exchange(conn, request, max_body)
                except HttpError:
                    if not reused:
                        raise
                    # A kept-alive connection the server had already closed: one fresh try.
                    conn.close()
                    conn = await self._connect(origin)
                    response, keep = await self._exchange(conn, request, max_body)
            except BaseException:
                conn.close()
                raise
            if keep:
                conn.idle_since = asyncio.get_running_loop().time()
                origin.idle.append(conn)
            else:
                conn.close()
            return response

    async def _exchange(self, conn: _Conn, request: bytes, max_body: int) -> tuple[Response, bool]:
        reader = conn.reader
        try:
            conn.writer.write(request)
            await conn.writer.drain()
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                status, headers = _parse_head(head)
                if status >= 200 or status == 101:
                    break  # 1xx interim responses (100 Continue) are skipped
            body, complete = await _read_body(reader, headers, max_body)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, OSError,
                ssl.SSLError, ValueError) as exc:
            raise HttpError(f"{type(exc).__name__}: {exc}"[:300] or type(exc).__name__) from exc
        keep = complete and headers.get("connection", "").lower() != "close"
        return Response(status, body), keep

    def close(self) -> None:
        for origin in self._origins.values():
            origin.close()
        self._origins.clear()


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    if not version.startswith("HTTP/1."):
        raise ValueError("not an HTTP/1.x response")
    status = int(rest[:3])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError("malformed header line")
        headers[name.strip().lower()] = value.strip()
    return status, headers


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str], max_body: int
                     ) -> tuple[bytes, bool]:
    """(first max_body bytes, whether the connection is left at a message boundary)."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        out = bytearray()
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                await reader.readuntil(b"\r\n")  # no trailers expected; the final CRLF
                return bytes(out[:max_body]), True
            if len(out) + size > max_body:
                out += await reader.read(max(0, max_body - len(out)))
                return bytes(out[:max_body]), False  # stop reading: drop the connection
            out += await reader.readexactly(size)
            await reader.readexactly(2)
    if "content-length" in headers:
        length = int(headers["content-length"])
        if length <= max_body:
            return await reader.readexactly(length), True
        return await reader.readexactly(max_body), False
    # No framing: the body runs to the end of the connection.
    return await reader.read(max_body), False


__all__ = ["Client", "HttpError", "Response", "UnsafeTarget"]
