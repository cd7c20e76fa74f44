"""Refuse webhook targets on private, loopback, link-local and other non-public addresses.

Checked twice: when the URL is set (literal addresses and a DNS lookup), and at delivery time when
each new connection is made (app.webhooks.http resolves, checks every address, and connects to a
checked one), so a DNS answer that changes between the two (rebinding) cannot slip through.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

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
    if parts.username or parts.password:
        return "must not carry credentials"
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
