"""The webhook HTTP sender against raw servers: framing, keep-alive, timeouts, TLS."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.webhooks.delivery import MAX_RESPONSE_BODY, Sender

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length"))
    return head + await reader.readexactly(length)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[str]]]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler, ssl_context: ssl.SSLContext | None = None) -> str:
        server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=ssl_context)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}/hook"

    yield start
    for server in servers:
        server.close()


@pytest.fixture
async def sender() -> AsyncIterator[Sender]:
    s = Sender(timeout_seconds=1.0, allow_private=True)
    yield s
    await s.aclose()


class TestSend:
    async def test_keep_alive_reuses_one_connection(self, serve, sender: Sender) -> None:
        connections = 0

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal connections
            connections += 1
            while True:
                try:
                    request = await read_request(reader)
                except asyncio.IncompleteReadError:
                    break
                assert request.startswith(b"POST /hook HTTP/1.1\r\n")
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
            writer.close()

        url = await serve(handler)
        for _ in range(3):
            result = await sender.post(url, {"webhook-id": "evt_1"}, b"{}")
            assert result.ok
            assert result.body == "ok"
        assert connections == 1

    async def test_chunked_and_oversized_bodies_are_truncated(self, serve, sender: Sender) -> None:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_request(reader)
            chunk = b"y" * 1500
            writer.write(b"HTTP/1.1 500 Oops\r\ntransfer-encoding: chunked\r\n\r\n")
            for _ in range(4):
                writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            writer.close()

        result = await sender.post(await serve(handler), {}, b"{}")
        assert not result.ok
        assert result.status == 500
        assert result.error == "HTTP 500"
        assert result.body == "y" * MAX_RESPONSE_BODY

    async def test_a_server_closing_a_kept_connection_is_retried_on_a_fresh_one(self, serve, sender) -> None:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_request(reader)
            # Says keep-alive, then closes: the next request must not fail because of it.
            writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
            await writer.drain()
            writer.close()

        url = await serve(handler)
        assert (await sender.post(url, {}, b"{}")).ok
        await asyncio.sleep(0.05)
        assert (await sender.post(url, {}, b"{}")).ok

    async def test_a_slow_receiver_times_out(self, serve, sender: Sender) -> None:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_request(reader)
            await asyncio.sleep(3)
            writer.close()

        result = await sender.post(await serve(handler), {}, b"{}")
        assert not result.ok
        assert result.error == "timeout after 1s"
        assert 900 <= result.duration_ms < 2000

    async def test_redirects_are_not_followed(self, serve, sender: Sender) -> None:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_request(reader)
            writer.write(b"HTTP/1.1 302 Found\r\nlocation: http://169.254.169.254/\r\n"
                         b"content-length: 0\r\n\r\n")
            await writer.drain()
            writer.close()

        result = await sender.post(await serve(handler), {}, b"{}")
        assert not result.ok
        assert result.status == 302

    async def test_connection_refused_is_recorded(self, sender: Sender) -> None:
        result = await sender.post("http://127.0.0.1:9/hook", {}, b"{}")
        assert not result.ok
        assert result.error.startswith("connect failed")

    async def test_header_injection_is_refused(self, sender: Sender) -> None:
        result = await sender.post("http://127.0.0.1:9/hook", {"x": "a\r\nevil: 1"}, b"{}")
        assert not result.ok


def make_tls(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a certificate for 127.0.0.1 and a client context trusting only it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_path, key_path)
    client = ssl.create_default_context(cafile=str(cert_path))
    return server, client


class TestTls:
    async def test_https_with_a_trusted_certificate(self, serve, tmp_path: Path) -> None:
        server_ctx, client_ctx = make_tls(tmp_path)

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            await writer.drain()
            writer.close()

        url = await serve(handler, server_ctx)
        trusting = Sender(timeout_seconds=2, allow_private=True, ssl_context=client_ctx)
        default = Sender(timeout_seconds=2, allow_private=True)
        try:
            assert (await trusting.post(url, {}, b"{}")).ok
            untrusted = await default.post(url, {}, b"{}")
        finally:
            await trusting.aclose()
            await default.aclose()
        assert not untrusted.ok
        assert "CERTIFICATE_VERIFY_FAILED" in untrusted.error


class TestPinnedAddress:
    """Each connection goes to an address the private-address check answered, never to a second
    resolution of the name (DNS rebinding)."""

    async def test_the_checked_answer_is_the_address_connected_to(self, serve) -> None:
        seen: list[bytes] = []

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen.append(await read_request(reader))
            writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
            await writer.drain()
            writer.close()

        port = int((await serve(handler)).rsplit(":", 1)[1].split("/")[0])
        asked: list[tuple[str, int]] = []

        async def resolve(host: str, port: int) -> list[str]:
            asked.append((host, port))
            return ["127.0.0.1"]

        # `.invalid` never resolves (RFC 6761): the request can only arrive through the checked answer.
        sender = Sender(timeout_seconds=2, allow_private=False, resolve=resolve)
        try:
            result = await sender.post(f"http://pinned.invalid:{port}/hook", {}, b"{}")
        finally:
            await sender.aclose()
        assert result.ok, result.error
        assert asked == [("pinned.invalid", port)]
        assert len(seen) == 1
        assert f"host: pinned.invalid:{port}".encode() in seen[0].lower()

    async def test_a_public_answer_is_not_swapped_for_a_private_one_at_connect(self) -> None:
        connections = 0

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal connections
            connections += 1
            writer.close()

        # The system resolves "localhost" to loopback, where a receiver listens; the check (the
        # resolver) answered a public address, so that is the only address connected to.
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]

        async def resolve(host: str, port: int) -> list[str]:
            return ["192.0.2.10"]  # TEST-NET-1: unroutable here

        sender = Sender(timeout_seconds=1, allow_private=True, resolve=resolve)
        try:
            result = await sender.post(f"http://localhost:{port}/hook", {}, b"{}")
        finally:
            await sender.aclose()
            server.close()
        assert not result.ok
        assert connections == 0

    async def test_a_loopback_name_is_refused_unless_private_targets_are_allowed(self, serve) -> None:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            await writer.drain()
            writer.close()

        url = (await serve(handler)).replace("127.0.0.1", "localhost")
        strict = Sender(timeout_seconds=2, allow_private=False)
        allowed = Sender(timeout_seconds=2, allow_private=True)  # AUTHPI_WEBHOOKS_ALLOW_PRIVATE=true
        try:
            refused = await strict.post(url, {}, b"{}")
            delivered = await allowed.post(url, {}, b"{}")
        finally:
            await strict.aclose()
            await allowed.aclose()
        assert not refused.ok
        assert refused.error.startswith("refused")
        assert delivered.ok
        assert delivered.body == "ok"
