"""Refuse webhook targets on private, loopback, link-local and other non-public addresses.

Checked twice: when the URL is set (literal addresses and a DNS lookup), and at delivery time inside
the connection itself (`GuardedBackend`), so the address that is checked is the address connected
to: a DNS answer that changes between the check and the connect (rebinding) cannot slip through.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import typing
from urllib.parse import urlsplit

import httpcore
import httpx

BLOCKED_HOSTNAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


class UnsafeTarget(Exception):
    """The webhook URL resolves to an address deliveries must not reach."""


def address_is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
                or ip.is_reserved or ip.is_unspecified or not ip.is_global)


def _literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


async def resolve_public(host: str, port: int) -> list[str]:
    """The host's addresses, all of them public, else UnsafeTarget."""
    if host.lower().rstrip(".") in BLOCKED_HOSTNAMES:
        raise UnsafeTarget(f"{host} is a loopback name")
    literal = _literal(host)
    if literal is not None:
        addresses = [literal]
    else:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise UnsafeTarget(f"{host} does not resolve") from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    bad = [a for a in addresses if not address_is_public(a)]
    if bad or not addresses:
        raise UnsafeTarget(f"{host} resolves to a non-public address")
    return addresses


def url_problem(url: str) -> str | None:
    """A reason to refuse the URL without resolving it (scheme, credentials, literal addresses)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an absolute http or https URL"
    if parts.username or parts.password:
        return "must not carry credentials"
    host = parts.hostname
    if host.lower().rstrip(".") in BLOCKED_HOSTNAMES:
        return "must not target a loopback host"
    literal = _literal(host)
    if literal is not None and not address_is_public(literal):
        return "must not target a private, loopback or link-local address"
    return None


async def check_url(url: str, *, allow_private: bool) -> str | None:
    """Create/update-time check: the static rules, then a DNS lookup. None when acceptable."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an absolute http or https URL"
    if allow_private:
        return None
    problem = url_problem(url)
    if problem:
        return problem
    try:
        await resolve_public(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    except UnsafeTarget as exc:
        return f"must target a public address ({exc})"
    return None


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves, checks every address, and connects to a checked one (TLS still uses the name)."""

    def __init__(self, allow_private: bool) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._allow_private = allow_private

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: typing.Iterable[typing.Any] | None = None
                          ) -> httpcore.AsyncNetworkStream:
        target = host
        if not self._allow_private:
            target = (await resolve_public(host, port))[0]
        return await self._inner.connect_tcp(target, port, timeout=timeout, local_address=local_address,
                                             socket_options=socket_options)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: typing.Iterable[typing.Any] | None = None
                                  ) -> httpcore.AsyncNetworkStream:
        raise UnsafeTarget("unix sockets are not webhook targets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a connection pool whose every new connection goes through the guard."""

    def __init__(self, *, allow_private: bool, max_connections: int = 100) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=max_connections,
            max_keepalive_connections=min(20, max_connections),
            keepalive_expiry=5.0,
            network_backend=GuardedBackend(allow_private),
        )
