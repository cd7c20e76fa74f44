"""A minimal DNS TXT lookup over UDP (RFC 1035) with the standard library, for domain ownership.

The system resolver (getaddrinfo) cannot ask for TXT records, and one query type does not justify a
dependency. Only what verification needs: one question, TXT answers, no TCP fallback.
"""

from __future__ import annotations

import asyncio
import secrets
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path

TXT = 16
IN = 1
DEFAULT_TIMEOUT = 3.0


class DnsError(Exception):
    pass


def system_nameserver(resolv_conf: Path = Path("/etc/resolv.conf")) -> tuple[str, int]:
    try:
        for line in resolv_conf.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "nameserver":
                return parts[1], 53
    except OSError:
        pass
    raise DnsError("no nameserver configured")


def build_query(name: str, query_id: int) -> bytes:
    header = struct.pack("!HHHHHH", query_id, 0x0100, 1, 0, 0, 0)  # recursion desired, 1 question
    qname = b"".join(bytes([len(label)]) + label.encode("ascii")
                     for label in name.rstrip(".").split(".")) + b"\x00"
    return header + qname + struct.pack("!HH", TXT, IN)


def _skip_name(packet: bytes, offset: int) -> int:
    while True:
        if offset >= len(packet):
            raise DnsError("truncated name")
        length = packet[offset]
        if length & 0xC0 == 0xC0:  # compression pointer: two bytes end the name
            return offset + 2
        if length == 0:
            return offset + 1
        offset += 1 + length


def parse_txt_answers(packet: bytes, query_id: int) -> list[str]:
    """The TXT strings of the answer section (each record's character-strings joined)."""
    if len(packet) < 12:
        raise DnsError("short response")
    rid, flags, qd, an, _, _ = struct.unpack("!HHHHHH", packet[:12])
    if rid != query_id:
        raise DnsError("response id mismatch")
    rcode = flags & 0x000F
    if rcode == 3:  # NXDOMAIN: the name has no records at all
        return []
    if rcode != 0:
        raise DnsError(f"server answered rcode {rcode}")
    offset = 12
    for _ in range(qd):
        offset = _skip_name(packet, offset) + 4
    out = []
    for _ in range(an):
        offset = _skip_name(packet, offset)
        rtype, _rclass, _ttl, rdlength = struct.unpack("!HHIH", packet[offset:offset + 10])
        offset += 10
        rdata = packet[offset:offset + rdlength]
        offset += rdlength
        if rtype != TXT:
            continue
        parts, i = [], 0
        while i < len(rdata):
            size = rdata[i]
            parts.append(rdata[i + 1:i + 1 + size].decode("utf-8", "replace"))
            i += 1 + size
        out.append("".join(parts))
    return out


class _Client(asyncio.DatagramProtocol):
    def __init__(self, query_id: int) -> None:
        self.query_id = query_id
        self.answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: object) -> None:
        # Ignore stray datagrams; only the reply to our id counts (spoofing needs the id too).
        if len(data) >= 2 and struct.unpack("!H", data[:2])[0] == self.query_id and not self.answer.done():
            self.answer.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.answer.done():
            self.answer.set_exception(DnsError(str(exc)))


async def resolve_txt(name: str, *, nameserver: tuple[str, int] | None = None,
                      timeout: float = DEFAULT_TIMEOUT) -> list[str]:
    server = nameserver or system_nameserver()
    query_id = secrets.randbelow(65536)
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(lambda: _Client(query_id),
                                                              remote_addr=server)
    try:
        transport.sendto(build_query(name, query_id))
        packet = await asyncio.wait_for(protocol.answer, timeout)
    except TimeoutError as exc:
        raise DnsError("no answer from the nameserver") from exc
    finally:
        transport.close()
    return parse_txt_answers(packet, query_id)


def parse_nameservers(value: str) -> list[tuple[str, int]]:
    """`AUTHPI_DNS_NAMESERVERS`: comma-separated `host[:port]` (IPv6 as `[addr]:port`)."""
    out = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        if item.startswith("["):
            host, _, rest = item[1:].partition("]")
            port = rest[1:] if rest.startswith(":") else ""
        elif item.count(":") == 1:
            host, _, port = item.partition(":")
        else:
            host, port = item, ""
        if not host or (port and not port.isdigit()) or not 0 < int(port or 53) < 65536:
            raise ValueError(f"AUTHPI_DNS_NAMESERVERS: {item!r} is not host[:port]")
        out.append((host, int(port or 53)))
    return out


def resolver_for(nameservers: str) -> Callable[[str], Awaitable[list[str]]]:
    """A TXT resolver asking the configured nameservers in turn (the system's when none)."""
    servers = parse_nameservers(nameservers or "")

    async def resolve(name: str) -> list[str]:
        if not servers:
            return await resolve_txt(name)
        error: DnsError | None = None
        for server in servers:
            try:
                return await resolve_txt(name, nameserver=server)
            except (DnsError, OSError) as exc:
                error = DnsError(str(exc))
        assert error is not None
        raise error

    return resolve
