"""Federation in the real Chromium (Playwright on /usr/bin/chromium): a second issuer of the same
authpi server is the upstream OpenID Provider, for a social-style auth method (one button on the
login page) and for an organization's OIDC connection (home-realm discovery by a DNS-verified
domain). First sign-ins provision, a later one links an existing account."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import asyncpg
import httpx
import pytest
from authpi_admin import AuthPIAdmin
from fastapi import FastAPI

from tests.conftest import AccountCredentials
from tests.federation.dns import TxtRecords, dns_server  # noqa: F401
from tests.federation.helpers import callback_url, events_of, make_upstream, social_method, upstream_user
from tests.federation.test_org_sso import verify_domain
from tests.fixtures.server import LiveServer
from tests.hosted.helpers import claims_of
from tests.oidc.helpers import PASSWORD, REDIRECT, OidcSetup, authorize_params, make_setup, pkce_pair

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed")


@pytest.fixture
async def down(admin: AuthPIAdmin) -> OidcSetup:
    return await make_setup(admin)


@pytest.fixture
async def browser() -> AsyncIterator:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        yield chromium
        await chromium.close()


class Tab:
    """A fresh browser context at the downstream issuer; the client's callback is only observed."""

    def __init__(self, page, base: str, down: OidcSetup) -> None:
        self.page, self.base, self.down = page, base, down
        self.captured: list[str] = []
        self.verifier = ""

    @classmethod
    async def open(cls, browser, base: str, down: OidcSetup) -> Tab:
        context = await browser.new_context()
        page = await context.new_page()
        self = cls(page, base, down)

        async def callback(route) -> None:
            await route.fulfill(status=200, body="ok", content_type="text/plain")

        await context.route("http://localhost:3000/**", callback)
        page.on("request", lambda r: self.captured.append(r.url) if r.url.startswith(REDIRECT) else None)
        return self

    async def authorize(self) -> None:
        self.verifier, challenge = pkce_pair()
        await self.page.goto(f"{self.base}/{self.down.issuer_id}/authorize?"
                             + urlencode(authorize_params(self.down, challenge)))
        await self.page.wait_for_selector("#username")

    async def upstream_password(self, username: str) -> None:
        """The upstream issuer's own login page."""
        await self.page.wait_for_url(lambda url: f"/{self.down.issuer_id}/" not in url and "/login" in url)
        await self.page.fill("#username", username)
        await self.page.fill("#password", PASSWORD)
        await self.page.click("#submit")

    async def landed(self) -> dict:
        for _ in range(300):
            if self.captured:
                break
            await self.page.wait_for_timeout(50)
        assert self.captured, (self.page.url, await self.page.content())
        code = parse_qs(urlsplit(self.captured[-1]).query)["code"][0]
        async with httpx.AsyncClient() as http:
            r = await http.post(f"{self.base}/{self.down.issuer_id}/token", data={
                "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                "code_verifier": self.verifier, "client_id": self.down.web_id,
                "client_secret": self.down.web_secret})
        assert r.status_code == 200, r.text
        return claims_of(r.json()["id_token"])


class TestFederationInChromium:
    async def test_social_button_provisions_then_signs_the_same_user_in(
            self, live_server: LiveServer, admin: AuthPIAdmin, account: AccountCredentials, down: OidcSetup,
            browser, pg: asyncpg.Pool) -> None:
        base = live_server.url
        _, up = await social_method(admin, base, down)
        await upstream_user(admin, up, "grace@hopper.example", verified=True)
        tab = await Tab.open(browser, base, down)
        await tab.authorize()
        button = tab.page.get_by_role("link", name="Continue with Upstream IdP")
        await button.click()
        await tab.upstream_password("grace@hopper.example")
        first = await tab.landed()
        assert first["amr"] == ["fed"]
        assert first["email"] == "grace@hopper.example"
        # A second browser: the same user, no second provisioning.
        again = await Tab.open(browser, base, down)
        await again.authorize()
        await again.page.get_by_role("link", name="Continue with Upstream IdP").click()
        await again.upstream_password("grace@hopper.example")
        second = await again.landed()
        assert second["sub"] == first["sub"]
        assert len(await events_of(pg, account.account_id, "user.sso.provisioned")) == 1

    async def test_organization_connection_by_email_provisions_then_links(
            self, app: FastAPI, live_server: LiveServer, admin: AuthPIAdmin, account: AccountCredentials,
            down: OidcSetup, browser, pg: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch,
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
        tab = await Tab.open(browser, base, down)
        await tab.authorize()
        await tab.page.fill("#sso-email", "bob@initech.example")
        await tab.page.click("#sso-submit")
        await tab.upstream_password("bob@initech.example")
        bob = await tab.landed()
        assert bob["amr"] == ["fed"]
        assert [o["id"] for o in bob["organizations"]] == [org.id]
        # Carol has an account already: her first SSO sign-in links to it.
        carol = await admin.issuer(down.issuer_id).users.create(
            {"username_type": "email", "username": "carol@initech.example", "password": PASSWORD})
        await upstream_user(admin, up, "carol@initech.example", verified=False)
        other = await Tab.open(browser, base, down)
        await other.authorize()
        await other.page.fill("#sso-email", "carol@initech.example")
        await other.page.click("#sso-submit")
        await other.upstream_password("carol@initech.example")
        claims = await other.landed()
        assert claims["sub"] == carol.id
        assert [o["id"] for o in claims["organizations"]] == [org.id]
        linked = await events_of(pg, account.account_id, "user.sso.linked")
        assert [(e["_user_id"], e["via"]) for e in linked] == [(bob["sub"], "provisioned"),
                                                               (carol.id, "verified_domain")]
