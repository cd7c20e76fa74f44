"""Slow clients are dropped (issue 9, item 5): headers must arrive within the header timeout, the
body within the body timeout, over real sockets against the server `authpi serve` runs."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from app.main import create_app
from tests.conftest import make_settings
from tests.fixtures.server import LiveServer, free_port

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 2.0
# A dropped socket must be closed well before this (recv would block forever without the fix).
WITHIN = 8.0


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[LiveServer]:
    port = free_port()
    app = create_app(make_settings(public_url=f"http://127.0.0.1:{port}", port=port,
                                   header_timeout_seconds=HEADER_TIMEOUT,
                                   body_timeout_seconds=BODY_TIMEOUT), database_url=database_url)
    live = LiveServer(app, port).start()
    yield live
    live.stop()


def _connect(server: LiveServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=WITHIN)
    return sock


def _read_until_closed(sock: socket.socket) -> tuple[bytes, float]:
    start = time.monotonic()
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except TimeoutError:
        raise AssertionError("the server kept a slow client's socket open") from None
    except ConnectionResetError:
        pass
    return data, time.monotonic() - start


class TestSlowClients:
    def test_a_silent_connection_is_closed(self, server: LiveServer) -> None:
        with _connect(server) as sock:
            data, _ = _read_until_closed(sock)
        assert data == b"" or data.startswith(b"HTTP/1.1 408")

    def test_headers_sent_too_slowly_get_408_and_close(self, server: LiveServer) -> None:
        with _connect(server) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finished
            data, _ = _read_until_closed(sock)
        assert data.startswith(b"HTTP/1.1 408"), data
        assert b'"retryable": true' in data

    def test_a_body_sent_too_slowly_is_dropped(self, server: LiveServer) -> None:
        with _connect(server) as sock:
            sock.sendall(b"POST /v1/accounts/acc_x/issuers HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"name\":")
            data, _ = _read_until_closed(sock)
        # Either our 408 or the app's own answer to a cut body; never an open socket.
        assert data == b"" or data.startswith(b"HTTP/1.1 4"), data

    def test_a_trickle_that_keeps_sending_is_still_cut_at_the_deadline(self, server: LiveServer) -> None:
        with _connect(server) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")
            start = time.monotonic()
            closed = False
            while time.monotonic() - start < WITHIN:
                try:
                    sock.sendall(b"X-A: b\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
                    break
                sock.settimeout(0.2)
                try:
                    if sock.recv(65536).startswith(b"HTTP/1.1 408"):
                        closed = True
                        break
                except TimeoutError:
                    pass
            assert closed, "a client trickling header lines was never cut off"

    def test_many_half_sent_requests_are_all_released_and_others_are_served(
            self, server: LiveServer) -> None:
        socks = [_connect(server) for _ in range(100)]
        try:
            for sock in socks:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            # Meanwhile a normal client is served.
            assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200
            for sock in socks:
                data, _ = _read_until_closed(sock)
                assert data.startswith(b"HTTP/1.1 408"), data
        finally:
            for sock in socks:
                sock.close()

    def test_a_normal_keep_alive_client_is_unaffected(self, server: LiveServer) -> None:
        with httpx.Client(base_url=server.url, timeout=5) as client:
            for _ in range(3):
                assert client.get("/healthz").status_code == 200
                time.sleep(HEADER_TIMEOUT * 0.6)
