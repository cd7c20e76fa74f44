"""Federation in the real Chromium (Playwright on /usr/bin/chromium): a second issuer of the same
authpi server is the upstream OpenID Provider, for a social-style auth method (one button on the
login page) and for an organization's OIDC connection (home-realm discovery by a DNS-verified
domain). First sign-ins provision, a later one links an existing account."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest
from authpi_admin import AuthPIAdmin
from fastapi import FastAPI

from tests.conftest import AccountCredentials
from tests.e2e.test_signin_browser import CHROMIUM, Session, browser  # noqa: F401
from tests.federation.dns import TxtRecords, dns_server  # noqa: F401
from tests.federation.helpers import callback_url, events_of, make_upstream, social_method, upstream_user
from tests.federation.test_org_sso import verify_domain
from tests.fixtures.server import LiveServer
from tests.oidc.helpers import PASSWORD, OidcSetup, make_setup

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed")


@pytest.fixture
async def down(admin: AuthPIAdmin) -> OidcSetup:
    return await make_setup(admin)


class Tab(Session):
    """A fresh browser context at the downstream issuer, passing through the upstream's pages."""

    async def authorize(self) -> None:
        await self.page.goto(self.authorize_url())
        await self.page.wait_for_selector("#username")

    async def upstream_password(self, username: str) -> None:
        """The upstream issuer's own login page."""
        await self.page.wait_for_url(lambda url: f"/{self.setup.issuer_id}/" not in url and "/login" in url)
        await self.page.fill("#username", username)
        await self.page.fill("#password", PASSWORD)
        await self.page.click("#submit")

    async def by_email(self, email: str) -> dict:
        """Home-realm discovery: the email's domain picks the organization's connection."""
        await self.authorize()
        await self.page.fill("#sso-email", email)
        await self.page.click("#sso-submit")
        await self.upstream_password(email)
        return await self.landed()


class TestFederationInChromium:
    async def test_social_button_provisions_then_signs_the_same_user_in(
            self, live_server: LiveServer, admin: AuthPIAdmin, account: AccountCredentials, down: OidcSetup,
            browser, pg: asyncpg.Pool) -> None:  # noqa: F811
        base = live_server.url
        _, up = await social_method(admin, base, down)
        await upstream_user(admin, up, "grace@hopper.example", verified=True)
        tab = await Tab.open(browser, live_server, down)
        await tab.authorize()
        button = tab.page.get_by_role("link", name="Continue with Upstream IdP")
        await button.click()
        await tab.upstream_password("grace@hopper.example")
        first = await tab.landed()
        assert first["amr"] == ["fed"]
        assert first["email"] == "grace@hopper.example"
        # A second browser: the same user, no second provisioning.
        again = await Tab.open(browser, live_server, down)
        await again.authorize()
        await again.page.get_by_role("link", name="Continue with Upstream IdP").click()
        await again.upstream_password("grace@hopper.example")
        second = await again.landed()
        assert second["sub"] == first["sub"]
        assert len(await events_of(pg, account.account_id, "user.sso.provisioned")) == 1

    async def test_organization_connection_by_email_provisions_then_links(
            self, app: FastAPI, live_server: LiveServer, admin: AuthPIAdmin, account: AccountCredentials,
            down: OidcSetup, browser, pg: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
            dns_server: tuple[TxtRecords, str]) -> None:  # noqa: F811
        base = live_server.url
        org = await admin.issuer(down.issuer_id).organizations.create(
            {"name": "Initech", "default_member_scopes": ["invoices:read"]})
        await verify_domain(app, admin, monkeypatch, dns_server, down.issuer_id, org.id, "initech.example")
        up = await make_upstream(admin, [callback_url(base, down.issuer_id, org.id)])
        await admin.issuer(down.issuer_id).organizations.update(org.id, {"sso": {
            "enabled": True, "sso_only": False, "connection": {
                "type": "oidc", "issuer": up.url(base), "client_id": up.client_id,
                "client_secret": up.client_secret}}})
        await upstream_user(admin, up, "bob@initech.example", verified=False)
        bob = await (await Tab.open(browser, live_server, down)).by_email("bob@initech.example")
        assert bob["amr"] == ["fed"]
        assert [o["id"] for o in bob["organizations"]] == [org.id]
        # Carol has an account already: her first SSO sign-in links to it.
        carol = await admin.issuer(down.issuer_id).users.create(
            {"username_type": "email", "username": "carol@initech.example", "password": PASSWORD})
        await upstream_user(admin, up, "carol@initech.example", verified=False)
        claims = await (await Tab.open(browser, live_server, down)).by_email("carol@initech.example")
        assert claims["sub"] == carol.id
        assert [o["id"] for o in claims["organizations"]] == [org.id]
        linked = await events_of(pg, account.account_id, "user.sso.linked")
        assert [(e["_user_id"], e["via"]) for e in linked] == [(bob["sub"], "provisioned"),
                                                               (carol.id, "verified_domain")]
