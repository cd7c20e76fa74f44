"""The hosted sign-in in the real Chromium (Playwright on /usr/bin/chromium): password then a TOTP
code from pyotp, backup codes (once), trust this device / delete it through authpi_admin / asked
again, and passkeys (enrolment, usernameless sign-in, a cloned counter refused) through Chromium's
virtual authenticator (CDP WebAuthn domain). Issuers live at http://localhost:{port}: WebAuthn
refuses IP literals as RP IDs."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import asyncpg
import httpx
import pyotp
import pytest
from authpi_admin import AuthPIAdmin

from app.main import create_app
from tests.conftest import AccountCredentials, make_settings
from tests.fixtures.server import LiveServer, free_port
from tests.hosted.helpers import claims_of, enrol_totp
from tests.oidc.helpers import PASSWORD, REDIRECT, OidcSetup, authorize_params, make_setup, pkce_pair

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed")


@pytest.fixture(scope="session")
def localhost_server(database_url: str) -> Iterator[LiveServer]:
    port = free_port()
    application = create_app(make_settings(public_url=f"http://localhost:{port}", port=port),
                             database_url=database_url)
    server = LiveServer(application, port).start()
    server.url = f"http://localhost:{port}"
    yield server
    server.stop()


@pytest.fixture
async def setup(admin: AuthPIAdmin) -> OidcSetup:
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


class Session:
    """One Chromium page against one issuer, capturing the client's callbacks."""

    def __init__(self, page, server: LiveServer, setup: OidcSetup) -> None:
        self.page, self.server, self.setup = page, server, setup
        self.captured: list[str] = []
        self.verifier = ""

    @classmethod
    async def open(cls, browser, server: LiveServer, setup: OidcSetup, locale: str = "en-US") -> Session:
        context = await browser.new_context(locale=locale)
        page = await context.new_page()
        self = cls(page, server, setup)

        async def callback(route) -> None:
            await route.fulfill(status=200, body="ok", content_type="text/plain")

        # The client's callback is only observed (a route may miss a redirect that a script's
        # form.submit() started, so the request itself is what counts).
        await context.route("http://localhost:3000/**", callback)
        page.on("request", lambda r: self.captured.append(r.url) if r.url.startswith(REDIRECT) else None)
        return self

    def authorize_url(self, **extra: str) -> str:
        self.captured.clear()  # a new authorization request: wait for its own callback
        self.verifier, challenge = pkce_pair()
        return (f"{self.server.url}/{self.setup.issuer_id}/authorize?"
                + urlencode(authorize_params(self.setup, challenge, **extra)))

    async def password(self, **extra: str) -> None:
        await self.page.goto(self.authorize_url(**extra))
        await self.page.fill("#username", self.setup.username)
        await self.page.fill("#password", PASSWORD)
        await self.page.click("#submit")

    async def code(self, code: str, trust: bool = False) -> None:
        await self.page.wait_for_selector("#code")
        await self.page.fill("#code", code)
        if trust:
            await self.page.check("#trust")
        await self.page.click("#submit")

    async def landed(self) -> dict:
        """The client got a code: exchange it and return the ID token's claims."""
        for _ in range(200):
            if self.captured:
                break
            await self.page.wait_for_timeout(50)
        assert self.captured, self.page.url
        query = parse_qs(urlsplit(self.captured[-1]).query)
        async with httpx.AsyncClient() as http:
            r = await http.post(f"{self.server.url}/{self.setup.issuer_id}/token", data={
                "grant_type": "authorization_code", "code": query["code"][0], "redirect_uri": REDIRECT,
                "code_verifier": self.verifier, "client_id": self.setup.web_id,
                "client_secret": self.setup.web_secret})
        assert r.status_code == 200, r.text
        return claims_of(r.json()["id_token"])


def _later_code(secret: str) -> str:
    return pyotp.TOTP(secret).at(time.time() + 30)


class TestTotpInChromium:
    async def test_code_backup_code_and_trusted_device(
            self, localhost_server: LiveServer, setup: OidcSetup, admin: AuthPIAdmin, browser,
            pg: asyncpg.Pool) -> None:
        _, secret, backup = await enrol_totp(admin, setup.issuer_id, setup.user_id)
        s = await Session.open(browser, localhost_server, setup)
        # Password, then a TOTP code from pyotp.
        await s.password()
        await s.page.wait_for_url("**/login/second-factor")
        assert await s.page.get_attribute("#code", "autocomplete") == "one-time-code"
        await s.code(_later_code(secret))
        claims = await s.landed()
        assert claims["amr"] == ["pwd", "otp", "mfa"]
        # A backup code, once.
        await s.password(prompt="login")
        await s.code(backup[0])
        assert (await s.landed())["acr"] == "urn:authpi:acr:2fa"
        await s.password(prompt="login")
        await s.code(backup[0])
        assert "not valid" in await s.page.inner_text("#error")
        # Trust this device: the next sign-in asks for no code.
        await s.code(backup[1], trust=True)
        await s.landed()
        cookies = {c["name"]: c for c in await s.page.context.cookies()}
        device = cookies[f"authpi_device_{setup.issuer_id}"]
        assert device["httpOnly"] is True
        assert device["path"] == f"/{setup.issuer_id}"
        await s.password(prompt="login")
        assert (await s.landed())["amr"] == ["pwd"]
        # Deleted through authpi_admin: asked again.
        devices = admin.issuer(setup.issuer_id).user(setup.user_id).trusted_devices
        listed = (await devices.list()).data
        assert len(listed) == 1
        await devices.delete(listed[0].id)
        await s.password(prompt="login")
        await s.page.wait_for_url("**/login/second-factor")
        await s.page.context.close()


async def _virtual_authenticator(page) -> tuple[object, str]:
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("WebAuthn.enable")
    added = await cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
        "hasUserVerification": True, "isUserVerified": True}})
    return cdp, added["authenticatorId"]


class TestPasskeysInChromium:
    async def test_enrol_sign_in_and_clone_refused(
            self, localhost_server: LiveServer, setup: OidcSetup, admin: AuthPIAdmin, browser,
            account: AccountCredentials, pg: asyncpg.Pool, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.DEBUG)
        s = await Session.open(browser, localhost_server, setup)
        cdp, authenticator = await _virtual_authenticator(s.page)
        await s.password()
        await s.landed()
        # Enrol a passkey after signing in.
        await s.page.goto(f"{localhost_server.url}/{setup.issuer_id}/passkeys")
        await s.page.click("#passkey-create")
        await s.page.wait_for_selector("#notice")
        assert "ready" in await s.page.inner_text("#notice")
        stored = (await cdp.send("WebAuthn.getCredentials",
                                 {"authenticatorId": authenticator}))["credentials"]
        assert len(stored) == 1
        assert stored[0]["isResidentCredential"] is True
        verifiers = admin.issuer(setup.issuer_id).user(setup.user_id).verifiers
        passkeys = [v for v in (await verifiers.list()).data if v.model_dump()["type"] == "passkey"]
        assert len(passkeys) == 1
        got = (await verifiers.get(passkeys[0].id)).model_dump()
        assert got["type"] == "passkey"
        assert "public_key" not in json.dumps(got)
        # The authenticator's private key is nowhere: not in responses, events, rows or logs.
        private = stored[0]["privateKey"]
        events = str([dict(r) for r in await pg.fetch("SELECT * FROM events WHERE account_id = $1",
                                                      account.account_id)])
        rows = str([dict(r) for r in await pg.fetch("SELECT * FROM user_verifiers WHERE user_id = $1",
                                                    setup.user_id)])
        page_text = await s.page.content()
        for text in (json.dumps(got), str([v.model_dump() for v in (await verifiers.list()).data]),
                     events, rows, page_text, caplog.text):
            assert private not in text
        # Usernameless sign-in with it, in a fresh browser state.
        await s.page.context.clear_cookies()
        await s.page.goto(s.authorize_url())
        await s.page.click("#passkey-sign-in")
        claims = await s.landed()
        assert claims["sub"] == setup.user_id
        assert claims["acr"] == "phr"
        assert claims["amr"] == ["hwk", "user", "mfa"]
        # A counter that went backwards (a cloned authenticator) is refused and recorded.
        await pg.execute("UPDATE user_verifiers SET sign_count = 100000 WHERE id = $1", passkeys[0].id)
        sessions_before = await pg.fetchval("SELECT count(*) FROM login_sessions WHERE user_id = $1",
                                            setup.user_id)
        await s.page.context.clear_cookies()
        await s.page.goto(s.authorize_url())
        await s.page.click("#passkey-sign-in")
        await s.page.wait_for_selector("#message")
        assert await pg.fetchval("SELECT count(*) FROM login_sessions WHERE user_id = $1",
                                 setup.user_id) == sessions_before
        counter = "SELECT sign_count FROM user_verifiers WHERE id = $1"
        assert await pg.fetchval(counter, passkeys[0].id) == 100000
        reasons = await pg.fetch("SELECT data->>'reason' AS reason FROM events WHERE account_id = $1 "
                                 "AND type = 'user.verification.failed'", account.account_id)
        assert "sign_count_regressed" in [r["reason"] for r in reasons]
        # Deleted through the verifiers API, it no longer signs in.
        await verifiers.delete(passkeys[0].id)
        await s.page.goto(s.authorize_url())
        await s.page.click("#passkey-sign-in")
        await s.page.wait_for_selector("#message")
        await s.page.context.close()

    async def test_policy_enrolment_with_a_passkey_then_passkey_as_second_factor(
            self, localhost_server: LiveServer, setup: OidcSetup, admin: AuthPIAdmin, browser,
            pg: asyncpg.Pool) -> None:
        await admin.issuer(setup.issuer_id).organizations.update(
            setup.org_id, {"security": {"mfa_required": True}})
        s = await Session.open(browser, localhost_server, setup)
        await _virtual_authenticator(s.page)
        await s.password()
        await s.page.wait_for_url("**/login/enrol")
        await s.page.click("#passkey-create")
        claims = await s.landed()
        assert claims["amr"] == ["pwd", "hwk", "user", "mfa"]
        assert claims["acr"] == "phr"
        # Next time: password, then the passkey as the second factor.
        await s.password(prompt="login")
        await s.page.wait_for_url("**/login/second-factor")
        assert await s.page.query_selector("#code") is None  # no TOTP enrolled: no code field
        await s.page.click("#passkey-sign-in")
        claims = await s.landed()
        assert claims["amr"] == ["pwd", "hwk", "user", "mfa"]
        await s.page.context.close()
