"""Organization SSO actions through the official SDK: domains (DNS TXT proof) and the secret."""

from __future__ import annotations

import asyncio
import struct

import asyncpg
import httpx
import pytest
from authpi_admin import AuthPIAdmin
from authpi_admin.errors import ConflictError, NotFoundError, ValidationError
from fastapi import FastAPI

from app.organization.dns import DnsError, build_query, parse_txt_answers, resolve_txt
from tests.conftest import AccountCredentials
from tests.fixtures.tenancy import counts, event_types


async def new_org(admin: AuthPIAdmin, issuer_id: str) -> str:
    return (await admin.issuer(issuer_id).organizations.create({"name": "Globex Corp"})).id


@pytest.fixture
def txt_records(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """A fake TXT resolver on the app: tests publish records into the returned dict."""
    records: dict[str, list[str]] = {}

    async def resolver(name: str) -> list[str]:
        return records.get(name, [])

    monkeypatch.setattr(app.state, "txt_resolver", resolver, raising=False)
    return records


class TestSsoDomains:
    async def test_add_verify_remove(self, admin: AuthPIAdmin, account: AccountCredentials,
                                     issuer_id: str, pg: asyncpg.Pool, txt_records: dict):
        org_id = await new_org(admin, issuer_id)
        sso = admin.issuer(issuer_id).organization(org_id).sso
        added = await sso.add_domain({"domain": "Globex.Example."})
        assert added.domain == "globex.example"
        assert added.txt_record_name == "_authpi-verification.globex.example"
        assert added.txt_record_value.startswith("authpi-verification=")
        not_yet = await sso.verify_domain("globex.example")
        assert (not_yet.verified, not_yet.error) == (False, "txt_record_not_found")
        txt_records[added.txt_record_name] = ["v=spf1 -all", added.txt_record_value]
        assert (await sso.verify_domain("globex.example")).verified
        assert await pg.fetchval("SELECT verified_at FROM organization_domains WHERE domain = $1 "
                                 "AND org_id = $2", "globex.example", org_id)
        removed = await sso.remove_domain("globex.example")
        assert removed["domain"] == "globex.example"
        with pytest.raises(NotFoundError):
            await sso.verify_domain("globex.example")
        assert [t for t in await event_types(pg, account.account_id) if t.startswith("organization.sso")] == [
            "organization.sso.domain-created", "organization.sso.domain-verified",
            "organization.sso.domain-deleted"]

    async def test_domain_claimed_once_per_issuer(self, admin: AuthPIAdmin, issuer_id: str,
                                                  second_issuer_id: str):
        a, b = await new_org(admin, issuer_id), await new_org(admin, issuer_id)
        await admin.issuer(issuer_id).organization(a).sso.add_domain({"domain": "globex.example"})
        with pytest.raises(ConflictError):
            await admin.issuer(issuer_id).organization(b).sso.add_domain({"domain": "globex.example"})
        other = await new_org(admin, second_issuer_id)
        await admin.issuer(second_issuer_id).organization(other).sso.add_domain({"domain": "globex.example"})
        # Deleting the organization releases its domains.
        await admin.issuer(issuer_id).organizations.delete(a)
        await admin.issuer(issuer_id).organization(b).sso.add_domain({"domain": "globex.example"})

    @pytest.mark.parametrize("body", [{}, {"domain": ""}, {"domain": "localhost"}, {"domain": "a b.com"},
                                      {"domain": "-bad.example"}, {"domain": "x" * 254},
                                      {"domain": "10.0.0.1"}, {"domain": 5},
                                      {"domain": "ok.example", "x": 1}])
    async def test_bad_domain_is_422_and_writes_nothing(self, client: httpx.AsyncClient, admin: AuthPIAdmin,
                                                        account: AccountCredentials, issuer_id: str,
                                                        pg: asyncpg.Pool, body: dict):
        org_id = await new_org(admin, issuer_id)
        before = await counts(pg, account.account_id, "organization_domains")
        resp = await client.post(
            f"/v1/accounts/{account.account_id}/issuers/{issuer_id}/organizations/{org_id}/sso/domains",
            json=body, auth=account.basic)
        assert resp.status_code == 422, resp.text
        assert resp.json()["fields"]
        assert await counts(pg, account.account_id, "organization_domains") == before


class TestSsoSecret:
    async def test_rotate_shows_secret_once(self, admin: AuthPIAdmin, account: AccountCredentials,
                                            issuer_id: str, pg: asyncpg.Pool):
        org_id = await new_org(admin, issuer_id)
        scope = admin.issuer(issuer_id).organization(org_id)
        first = await scope.sso.rotate_secret()
        second = await scope.sso.rotate_secret()
        assert first.secret != second.secret
        stored = await pg.fetchval("SELECT sso_secret_hash FROM organizations WHERE id = $1", org_id)
        assert stored.startswith("$argon2id$")
        assert second.secret not in str((await scope.get()).model_dump())
        events = await pg.fetch("SELECT data::text AS d FROM events WHERE org_id = $1", org_id)
        assert all(second.secret not in e["d"] for e in events)


class TestSsoIsolation:
    async def test_other_account_gets_404(self, admin: AuthPIAdmin, client: httpx.AsyncClient,
                                          account: AccountCredentials, other_account: AccountCredentials,
                                          issuer_id: str, second_issuer_id: str):
        org_id = await new_org(admin, issuer_id)
        await admin.issuer(issuer_id).organization(org_id).sso.add_domain({"domain": "globex.example"})
        for acc in (account.account_id, other_account.account_id):
            base = f"/v1/accounts/{acc}/issuers/{issuer_id}/organizations/{org_id}/sso"
            for method, path, body in [
                ("POST", f"{base}/domains", {"domain": "initech.example"}),
                ("DELETE", f"{base}/domains/globex.example", None),
                ("POST", f"{base}/domains/globex.example/verify", None),
                ("POST", f"{base}/rotate-secret", None),
            ]:
                resp = await client.request(method, path, json=body, auth=other_account.basic)
                assert resp.status_code == 404, (method, path, resp.text)
        with pytest.raises(NotFoundError):
            await admin.issuer(second_issuer_id).organization(org_id).sso.rotate_secret()


class _FakeDns(asyncio.DatagramProtocol):
    """Answers every TXT question with fixed records (a compression pointer names the answer)."""

    def __init__(self, records: list[bytes], rcode: int = 0) -> None:
        self.records, self.rcode = records, rcode

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        qid = struct.unpack("!H", data[:2])[0]
        question = data[12:]
        answers = b""
        for rec in self.records:
            rdata = b"".join(bytes([len(c)]) + c for c in (rec[i:i + 255] for i in range(0, len(rec), 255)))
            answers += b"\xc0\x0c" + struct.pack("!HHIH", 16, 1, 60, len(rdata)) + rdata
        header = struct.pack("!HHHHHH", qid, 0x8180 | self.rcode, 1, len(self.records), 0, 0)
        self.transport.sendto(header + question + answers, addr)  # type: ignore[attr-defined]


class TestDnsResolver:
    async def test_resolves_txt_from_a_nameserver(self):
        loop = asyncio.get_running_loop()
        long_value = b"authpi-verification=" + b"x" * 300  # split over two character-strings
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _FakeDns([b"v=spf1 -all", long_value]), local_addr=("127.0.0.1", 0))
        try:
            port = transport.get_extra_info("sockname")[1]
            values = await resolve_txt("_authpi-verification.globex.example",
                                       nameserver=("127.0.0.1", port), timeout=2)
        finally:
            transport.close()
        assert values == ["v=spf1 -all", long_value.decode()]

    async def test_nxdomain_is_empty_and_errors_raise(self):
        query = build_query("globex.example", 7)
        nx = struct.pack("!HHHHHH", 7, 0x8183, 1, 0, 0, 0) + query[12:]
        assert parse_txt_answers(nx, 7) == []
        with pytest.raises(DnsError):
            parse_txt_answers(nx, 8)
        servfail = struct.pack("!HHHHHH", 7, 0x8182, 1, 0, 0, 0) + query[12:]
        with pytest.raises(DnsError):
            parse_txt_answers(servfail, 7)

    async def test_timeout_is_a_dns_error(self):
        loop = asyncio.get_running_loop()
        silent, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                        local_addr=("127.0.0.1", 0))
        try:
            with pytest.raises(DnsError):
                await resolve_txt("globex.example", nameserver=silent.get_extra_info("sockname"),
                                  timeout=0.2)
        finally:
            silent.close()


class TestSsoVerifyWithFailingDns:
    async def test_dns_failure_is_reported_not_raised(self, app: FastAPI, admin: AuthPIAdmin,
                                                      issuer_id: str, monkeypatch: pytest.MonkeyPatch):
        async def broken(name: str) -> list[str]:
            raise DnsError("no answer from the nameserver")

        monkeypatch.setattr(app.state, "txt_resolver", broken, raising=False)
        org_id = await new_org(admin, issuer_id)
        sso = admin.issuer(issuer_id).organization(org_id).sso
        await sso.add_domain({"domain": "globex.example"})
        result = await sso.verify_domain("globex.example")
        assert result.verified is False
        assert result.error.startswith("dns_lookup_failed")
        with pytest.raises(ValidationError):
            await sso.add_domain({"domain": "not a domain"})
