"""The client's address, once for every endpoint.

- With no proxy configured, the socket peer.
- `AUTHPI_TRUSTED_PROXIES` (comma-separated CIDRs): when the peer is one of them, the
  `X-Forwarded-For` hops are read from the right, skipping trusted proxies; the client is the
  rightmost hop not in the list. Hops to its left were written by the client and are ignored.
- `AUTHPI_TRUST_PROXY_HEADERS=true`: shorthand for "the immediate peer is a trusted proxy" (and
  only it): the client is the rightmost hop.

Throttles count IPv6 clients per /64 (`throttle_key`): one host usually holds a whole /64.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_HOPS = 32


def parse_networks(values: Iterable[str] | str | None) -> tuple[Network, ...]:
    if values is None:
        return ()
    if isinstance(values, str):
        values = [v for v in (p.strip() for p in values.split(",")) if v]
    return tuple(ipaddress.ip_network(v, strict=False) for v in values)


def _ip(value: str) -> IPAddress | None:
    try:
        ip = ipaddress.ip_address(value.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


class ClientAddress:
    """Resolves a request scope to the client's address (see the module docstring)."""

    def __init__(self, trusted_proxies: Iterable[str] | str | None = None, *,
                 trust_immediate_peer: bool = False) -> None:
        self.trusted = parse_networks(trusted_proxies)
        self.trust_immediate_peer = trust_immediate_peer

    @classmethod
    def from_settings(cls, settings: Any) -> ClientAddress:
        return cls(settings.trusted_proxies, trust_immediate_peer=settings.trust_proxy_headers)

    def _is_trusted(self, ip: IPAddress | None) -> bool:
        return ip is not None and any(ip in net for net in self.trusted)

    def of_scope(self, scope: dict[str, Any]) -> str:
        client = scope.get("client")
        peer = client[0] if client else "unknown"
        if not self.trusted and not self.trust_immediate_peer:
            return peer
        peer_ip = _ip(peer)
        if not self.trust_immediate_peer and not self._is_trusted(peer_ip):
            return peer
        forwarded = [value.decode("latin-1") for name, value in scope.get("headers", ())
                     if name == b"x-forwarded-for"]
        hops = [h.strip() for h in ",".join(forwarded).split(",") if h.strip()][-MAX_HOPS:]
        if not hops:
            return peer
        if self.trust_immediate_peer and not self.trusted:
            return _normal(hops[-1])
        for hop in reversed(hops):
            if not self._is_trusted(_ip(hop)):
                return _normal(hop)
        return _normal(hops[0])  # every hop is one of our proxies: the leftmost is the origin


def _normal(hop: str) -> str:
    ip = _ip(hop)
    return str(ip) if ip is not None else hop[:64]


def throttle_key(address: str) -> str:
    """What throttles count: the address, or its /64 for IPv6."""
    ip = _ip(address)
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip) if ip is not None else address[:64]


def address_allowed(networks: tuple[Network, ...] | None, address: str) -> bool:
    """Whether `address` lies in one of `networks` (None: no restriction)."""
    if networks is None:
        return True
    ip = _ip(address)
    return ip is not None and any(ip in net for net in networks)
