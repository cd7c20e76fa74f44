"""A local DNS server (dnslib) answering TXT queries from a dict, for AUTHPI_DNS_NAMESERVERS."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from dnslib import QTYPE, RCODE, RR, TXT
from dnslib.server import BaseResolver, DNSServer


class TxtRecords(BaseResolver):
    def __init__(self) -> None:
        self.records: dict[str, list[str]] = {}
        self.asked: list[str] = []

    def resolve(self, request: Any, handler: Any) -> Any:
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        self.asked.append(name)
        if request.q.qtype == QTYPE.TXT:
            for value in self.records.get(name, []):
                reply.add_answer(RR(request.q.qname, QTYPE.TXT, rdata=TXT(value), ttl=60))
        if not reply.rr:
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dns_server() -> Iterator[tuple[TxtRecords, str]]:
    """(the records to serve, the `host:port` for AUTHPI_DNS_NAMESERVERS)."""
    records = TxtRecords()
    port = free_udp_port()
    server = DNSServer(records, port=port, address="127.0.0.1")
    server.start_thread()
    yield records, f"127.0.0.1:{port}"
    server.stop()
