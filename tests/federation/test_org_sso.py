"""Enterprise SSO over OIDC per organization: the upstream is a second issuer of the same server;
domains are verified through a local DNS server named by AUTHPI_DNS_NAMESERVERS; home-realm
discovery by email and by `org=`; JIT provisioning with default_member_scopes; sso_only; and the
refusals (another organization's user, an unverified domain) changing nothing."""

from __future__ import annotations

import json

import asyncpg
import httpx
import pytest
from authpi_admin import AuthPIAdmin
from fastapi import FastAPI

from tests.conftest import AccountCredentials
from tests.federation.dns import TxtRecords, dns_server  # noqa: F401
from tests.federation.helpers import (
    Upstream,
    Walker,
    callback_url,
    events_of,
    make_upstream,
    snapshot,
    upstream_user,
)
from tests.fixtures.server import LiveServer
from tests.hosted.helpers import Browser
from tests.oidc.helpers import PASSWORD, OidcSetup


async def verify_domain(app: FastAPI, admin: AuthPIAdmin, monkeypatch: pytest.MonkeyPatch,
                        dns: tuple[TxtRecords, str], issuer_id: str, org_id: str, domain: str) -> None:
    """The existing DNS TXT flow, answered by the local DNS server through AUTHPI_DNS_NAMESERVERS."""
    records, nameserver = dns
    monkeypatch.setattr(app.state.settings, "dns_nameservers", nameserver)
    sso = admin.issuer(issuer_id).organization(org_id).sso
    added = await sso.add_domain({"domain": domain})
    records.records[added.txt_record_name] = [added.txt_record_value]
    result = await sso.verify_domain(domain)
    assert result.verified, result
    assert added.txt_record_name in records.asked


async def connect(admin: AuthPIAdmin, base: str, down: OidcSetup, org_id: str, *, sso_only: bool = False
                  ) -> Upstream:
    up = await make_upstream(admin, [callback_url(base, down.issuer_id, org_id)])
    await admin.issuer(down.issuer_id).organizations.update(org_id, {
        "default_member_scopes": ["invoices:read"],
        "sso": {"enabled": True, "sso_only": sso_only, "connection": {
            "type": "oidc", "issuer": up.url(base), "client_id": up.client_id,
            "client_secret": up.client_secret}}})
    return up


class TestOrganizationConnection:
    async def test_home_realm_discovery_provisions_then_links(
            self, app: FastAPI, admin: AuthPIAdmin, account: AccountCredentials, live_server: LiveServer,
            down: OidcSetup, http: httpx.AsyncClient, pg: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch,
            dns_server: tuple[TxtRecords, str]) -> None:  # noqa: F811
        base = live_server.url
        org = await admin.issuer(down.issuer_id).organizations.create({"name": "Initech"})
        await verify_domain(app, admin, monkeypatch, dns_server, down.issuer_id, org.id, "initech.example")
        up = await connect(admin, base, down, org.id)
        await upstream_user(admin, up, "bob@initech.example", verified=False)
        # First sign-in: the email's verified domain routes to Initech's connection; Bob is created
        # with a membership carrying the default scopes.
        walker = Walker(http, base, down)
        claims = await walker.tokens(await walker.via_email("bob@initech.example", "bob@initech.example"))
        assert claims["amr"] == ["fed"]
        member = await pg.fetchrow("SELECT scopes::text AS s, status FROM memberships WHERE org_id = $1 "
                                   "AND member_id = $2", org.id, claims["sub"])
        assert (json.loads(member["s"]), member["status"]) == (["invoices:read"], "active")
        assert [o["id"] for o in claims["organizations"]] == [org.id]
        provisioned = await events_of(pg, account.account_id, "user.sso.provisioned")
        assert [(e["_user_id"], e["source_id"]) for e in provisioned] == [(claims["sub"], org.id)]
        # Carol already has an account (a password) on the verified domain: her first SSO sign-in
        # links to it, and makes her a member.
        carol = await admin.issuer(down.issuer_id).users.create({
            "username_type": "email", "username": "carol@initech.example", "password": PASSWORD})
        await upstream_user(admin, up, "carol@initech.example", verified=False)
        async with httpx.AsyncClient(timeout=30) as other:
            second = Walker(other, base, down)
            claims2 = await second.tokens(await second.via_email("carol@initech.example",
                                                                 "carol@initech.example"))
        assert claims2["sub"] == carol.id
        linked = [e for e in await events_of(pg, account.account_id, "user.sso.linked")
                  if e["_user_id"] == carol.id]
        assert [e["via"] for e in linked] == ["verified_domain"]
        assert len(await events_of(pg, account.account_id, "user.sso.provisioned")) == 1
        # org= in the authorization request goes straight to the connection too.
        async with httpx.AsyncClient(timeout=30) as third:
            walker3 = Walker(third, base, down)
            r = await third.get(walker3.authorize_url(org=org.id))
            login = await third.get(base + r.headers["location"])
            assert login.status_code == 303
            assert login.headers["location"].startswith(f"/{down.issuer_id}/login/federated/{org.id}?")
            claims3 = await walker3.tokens(await walker3.follow(login, username="bob@initech.example"))
        assert (claims3["sub"], claims3["org_id"]) == (claims["sub"], org.id)

    async def test_an_unverified_domain_or_another_organizations_user_is_refused(
            self, app: FastAPI, admin: AuthPIAdmin, account: AccountCredentials, live_server: LiveServer,
            down: OidcSetup, http: httpx.AsyncClient, pg: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch,
            dns_server: tuple[TxtRecords, str]) -> None:  # noqa: F811
        base = live_server.url
        initech = await admin.issuer(down.issuer_id).organizations.create({"name": "Initech"})
        await verify_domain(app, admin, monkeypatch, dns_server, down.issuer_id, initech.id,
                            "initech.example")
        # Globex (down.org_id, Ada's organization) verified globex.example.
        await verify_domain(app, admin, monkeypatch, dns_server, down.issuer_id, down.org_id,
                            "globex.example")
        # Claimed but never verified.
        await admin.issuer(down.issuer_id).organization(initech.id).sso.add_domain(
            {"domain": "initrode.example"})
        up = await connect(admin, base, down, initech.id)
        for email in (down.username, "eve@initrode.example", "mallory@evil.example"):
            await upstream_user(admin, up, email, verified=True)
        before = await snapshot(pg, account.account_id, down.issuer_id)
        for email in (down.username, "eve@initrode.example", "mallory@evil.example"):
            async with httpx.AsyncClient(timeout=30) as browser:
                walker = Walker(browser, base, down)
                page = await walker.via_source(initech.id, email)
            assert page.status_code == 403, page.text
            assert "outside the organization" in page.text
        assert await snapshot(pg, account.account_id, down.issuer_id) == before
        failures = await events_of(pg, account.account_id, "user.verification.failed")
        assert [e["reason"] for e in failures if e.get("source_id") == initech.id] == [
            "email_outside_verified_domains"] * 3
        assert await events_of(pg, account.account_id, "user.sso.linked") == []

    async def test_sso_only_refuses_the_password_and_says_so(
            self, app: FastAPI, admin: AuthPIAdmin, account: AccountCredentials, live_server: LiveServer,
            down: OidcSetup, pg: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch,
            dns_server: tuple[TxtRecords, str]) -> None:  # noqa: F811
        base = live_server.url
        await verify_domain(app, admin, monkeypatch, dns_server, down.issuer_id, down.org_id,
                            "globex.example")
        up = await connect(admin, base, down, down.org_id, sso_only=True)
        await upstream_user(admin, up, down.username, verified=False)
        async with httpx.AsyncClient(timeout=30, headers={"Origin": base}) as http:
            before = await snapshot(pg, account.account_id, down.issuer_id)
            refused = await Browser(http, down, base).password()
            assert refused.status_code == 403
            assert "Globex Corp requires single sign-on" in refused.text
            assert f'href="/{down.issuer_id}/login/federated/{down.org_id}?' in refused.text
            assert await snapshot(pg, account.account_id, down.issuer_id) == before
            failures = await events_of(pg, account.account_id, "user.verification.failed")
            assert failures[-1]["reason"] == "sso_required"
            # Its connection is the way in (Ada links through the verified domain).
            walker = Walker(http, base, down)
            claims = await walker.tokens(await walker.via_email(down.username, down.username))
            assert (claims["sub"], claims["amr"]) == (down.user_id, ["fed"])

    async def test_another_tenant_cannot_reach_the_connection(
            self, admin: AuthPIAdmin, other_admin: AuthPIAdmin, live_server: LiveServer,
            down: OidcSetup) -> None:
        from authpi_admin.errors import NotFoundError

        up = await connect(admin, live_server.url, down, down.org_id)
        assert up.client_id
        with pytest.raises(NotFoundError):
            await other_admin.issuer(down.issuer_id).organizations.get(down.org_id)
        with pytest.raises(NotFoundError):
            await other_admin.issuer(down.issuer_id).organizations.update(
                down.org_id, {"sso": {"enabled": False}})
