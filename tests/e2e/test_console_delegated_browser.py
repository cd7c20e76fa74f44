"""A delegated admin in the real Chromium: a key limited to one issuer signs in to the console and sees
that issuer only, and no account-wide page in the navigation."""

from __future__ import annotations

from typing import Any

import pytest
from authpi_admin import AuthPIAdmin

from tests.e2e.test_oidc_relying_parties import CHROMIUM, _playwright_missing

pytestmark = pytest.mark.skipif(_playwright_missing() is not None, reason=str(_playwright_missing()))


async def test_a_key_limited_to_one_issuer_sees_only_it(live_server: Any, admin: AuthPIAdmin) -> None:
    from playwright.async_api import async_playwright

    base = live_server.url
    mine = await admin.issuers.create({"name": "delegated-mine"})
    other = await admin.issuers.create({"name": "delegated-other"})
    key = await admin.api_keys.create({"type": "api_key", "name": "team-a", "restrictions": {
        "scopes": ["issuers:**"], "issuer_ids": [mine.id]}})

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-sync"])
        page = await (await browser.new_context(viewport={"width": 1280, "height": 860})).new_page()
        await page.goto(base + "/console/sign-in")
        await page.get_by_label("Key ID").fill(key.id)
        await page.get_by_label("Secret").fill(key.secret_plain)
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url(base + "/console")
        assert "Delegated admin" in await page.inner_text("main")
        nav = page.get_by_role("navigation", name="Main")
        for label in ("Issuers", "Organizations", "Users", "Agents"):
            assert await nav.get_by_role("link", name=label).count() == 1, label
        for label in ("Overview", "Webhooks", "Events", "API keys"):
            assert await nav.get_by_role("link", name=label).count() == 0, label

        await nav.get_by_role("link", name="Issuers").click()
        await page.wait_for_url(base + "/console/issuers")
        main = await page.inner_text("main")
        assert "delegated-mine" in main
        assert "delegated-other" not in main
        assert await page.get_by_role("link", name="New issuer").count() == 0

        response = await page.goto(f"{base}/console/issuers/{other.id}")
        assert response is not None
        assert response.status == 404
        assert "does not exist in this account" in await page.inner_text("main")
        await browser.close()
