"""An invitation end to end in the real Chromium (Playwright on /usr/bin/chromium): invited through
authpi_admin over HTTP, the link read from the mail the real SMTP server (aiosmtpd) received, a
password set on the hosted invitation page, then a sign-in through an authpi_idp authorization-code
flow whose ID token and userinfo carry the organization with the invited scopes. No JavaScript."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from authpi_admin import AuthPIAdmin
from authpi_idp import IdpClient

from tests.conftest import AccountCredentials
from tests.e2e.test_signin_pages import (
    _audit,
    chromium,  # noqa: F401  (the Chromium fixture)
)
from tests.fixtures.server import LiveServer
from tests.fixtures.smtp import SmtpSink
from tests.hosted.helpers import claims_of
from tests.oidc.helpers import REDIRECT, make_setup

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed")
GRACE = "grace@example.com"
GRACE_PASSWORD = "grace's own passphrase 1906"


@pytest.fixture
async def remote_admin(live_server: LiveServer, account: AccountCredentials) -> AsyncIterator[AuthPIAdmin]:
    """authpi_admin over real HTTP to the live server (whose public URL the mail's link carries)."""
    async with httpx.AsyncClient(base_url=live_server.url) as http:
        yield AuthPIAdmin(api_key=account.basic, base_url=live_server.url, http_client=http)


async def test_grace_accepts_by_mail_and_signs_in_with_the_invited_scopes(
        live_server: LiveServer, remote_admin: AuthPIAdmin, smtp: SmtpSink,
        chromium) -> None:  # noqa: F811  (the imported fixture)
    setup = await make_setup(remote_admin)
    org = remote_admin.issuer(setup.issuer_id).organization(setup.org_id)
    inv = await org.invitations.create({"email": GRACE, "scopes": ["invoices:read", "reports:read"]})
    mail = (await asyncio.to_thread(smtp.wait_for, GRACE))[-1]
    link = re.search(rf"{re.escape(live_server.url)}/{setup.issuer_id}/invitation/[A-Za-z0-9_-]+",
                     mail.part("plain"))
    assert link, mail.part("plain")

    # No JavaScript anywhere on the way: the page is plain forms.
    context = await chromium.new_context(locale="en-US", java_script_enabled=False)
    page = await context.new_page()
    captured: list[str] = []

    async def callback(route) -> None:
        await route.fulfill(status=200, body="ok", content_type="text/plain")

    await context.route("http://localhost:3000/**", callback)
    page.on("request", lambda r: captured.append(r.url) if r.url.startswith(REDIRECT) else None)

    # The link: the organization, the invited email, a new password (no script on the page).
    await page.goto(link.group(0))
    assert "Join Globex Corp" in await page.inner_text("h1")
    assert await page.input_value("#email") == GRACE
    assert await page.get_attribute("#password", "autocomplete") == "new-password"
    assert await page.inner_text("label[for=password]") == "New password"
    seen = {"invitation form": await page.content()}
    await page.fill("#password", GRACE_PASSWORD)
    await page.click("#accept")
    await page.wait_for_selector("#message")
    assert "You are now a member of Globex Corp" in await page.inner_text("#message")
    seen["accepted"] = await page.content()
    # Labels, autocomplete and axe-core (serious or critical) on both pages, checked with scripts on.
    assert await _audit(chromium, seen) == {}
    assert (await org.invitations.get(inv.id)).status == "accepted"

    # Sign in as Grace through the relying party's authorization-code flow.
    issuer_url = setup.issuer_url(live_server.url)
    async with IdpClient(issuer_url, setup.web_id, redirect_uri=REDIRECT,
                         client_secret=setup.web_secret) as idp:
        auth = idp.create_authorization_url(scopes=["openid", "profile", "email"])
        await page.goto(auth.url)
        await page.fill("#username", GRACE)
        await page.fill("#password", GRACE_PASSWORD)
        await page.click("#submit")
        for _ in range(200):
            if captured:
                break
            await page.wait_for_timeout(50)
        assert captured, page.url
        agent = await idp.exchange_callback(captured[-1], auth)
        claims = claims_of(agent.tokens.id_token)
        assert claims["email"] == GRACE
        assert claims["email_verified"] is True  # receiving the mail proved it
        [membership] = claims["organizations"]
        assert membership["id"] == setup.org_id
        assert sorted(membership["scopes"]) == ["invoices:read", "reports:read"]
        info = await idp.get_user_info(agent)
        assert info.email == GRACE
        assert [(o.id, sorted(o.scopes)) for o in info.organizations] == [
            (setup.org_id, ["invoices:read", "reports:read"])]
    await context.close()
