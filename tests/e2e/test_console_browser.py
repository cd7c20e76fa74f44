"""The console in the real Chromium (Playwright on /usr/bin/chromium): the issue's acceptance run.

Signs in with an account key, creates an issuer, a client, an organization, a user, a member with scopes
and an organization API key through the console's forms, finds each through the official admin SDK and
their events on the Events page; sees a failed webhook delivery and redelivers it; suspends the
organization and sees its key fail /v1/me. Every page is checked with axe-core (no serious or critical
violation) at 1280 px and 390 px, with no CSP violation, and screenshotted under tests/e2e/screenshots/.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from authpi_admin import AuthPIAdmin

from tests.conftest import AccountCredentials
from tests.e2e.test_oidc_relying_parties import CHROMIUM, _playwright_missing
from tests.webhooks.receiver import Receiver

AXE = Path(__file__).parent / "node" / "node_modules" / "axe-core" / "axe.min.js"
SHOTS = Path(__file__).parent / "screenshots"
WIDTHS = {"desktop": (1280, 860), "phone": (390, 844)}

pytestmark = [
    pytest.mark.skipif(_playwright_missing() is not None, reason=str(_playwright_missing())),
    pytest.mark.skipif(not AXE.exists(), reason="run `npm ci` in tests/e2e/node (axe-core)"),
]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


async def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the current page (injected through the DevTools
    protocol, which the page's CSP does not govern)."""
    await page.evaluate(AXE.read_text())
    found = await page.evaluate(
        """async () => (await axe.run(document)).violations.map(v => ({
            id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))"""
    )
    return [v for v in found if v["impact"] in ("serious", "critical")]


async def eventually(check: Any, timeout: float = 20.0) -> Any:
    import asyncio

    deadline = time.time() + timeout
    while True:
        result = await check()
        if result or time.time() > deadline:
            return result
        await asyncio.sleep(0.2)


async def test_console_acceptance(
    live_server: Any, admin: AuthPIAdmin, account: AccountCredentials, receiver: Receiver
) -> None:
    from playwright.async_api import async_playwright

    base = live_server.url
    hook_path = f"/console-hook/{time.time_ns()}"
    receiver.default_status[hook_path] = 500
    hook = await admin.webhooks.create(
        {
            "name": "ops-hook",
            "url": receiver.endpoint(hook_path),
            "auth": {"type": "signature"},
            "events": ["organization.created"],
            "retry": {"max_attempts": 1},
        }
    )
    csp_errors: list[str] = []
    checked: dict[str, list[dict[str, Any]]] = {}
    SHOTS.mkdir(exist_ok=True)

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-sync"],
        )
        context = await browser.new_context(viewport={"width": 1280, "height": 860})
        page = await context.new_page()
        page.on(
            "console",
            lambda m: csp_errors.append(m.text) if "Content Security Policy" in m.text else None,
        )

        async def check(name: str) -> None:
            checked[name] = await axe_violations(page)

        # No session: a page that says so, with a way to sign in.
        await page.goto(base + "/console/issuers")
        assert "Sign in to use the console" in await page.inner_text("main")
        await check("no-session")
        await page.get_by_role("link", name="Sign in").click()
        await page.get_by_label("Key ID").fill(account.key_id)
        await page.get_by_label("Secret").fill(account.secret)
        await check("sign-in")
        await page.screenshot(path=str(SHOTS / "sign-in-1280.png"))
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url(base + "/console")
        nav = page.get_by_role("navigation")
        for label in (
            "Overview",
            "Issuers",
            "Organizations",
            "Users",
            "Agents",
            "Webhooks",
            "Events",
            "API keys",
        ):
            assert await nav.get_by_role("link", name=label, exact=True).count() == 1

        # Issuer.
        await page.get_by_role("link", name="Issuers", exact=True).click()
        await page.get_by_role("link", name="New issuer").click()
        await page.get_by_label("Name", exact=True).fill("acme-prod")
        await page.get_by_role("button", name="Create", exact=True).click()
        await page.wait_for_url(re.compile(r".*/console/issuers/i_[0-9a-z]+\?created=1"))
        issuer_id = re.search(r"/issuers/(i_[0-9a-z]+)", page.url).group(1)  # type: ignore[union-attr]
        assert (await admin.issuers.get(issuer_id)).name == "acme-prod"
        assert f"{base}/{issuer_id}/.well-known/openid-configuration" in await page.inner_text("main")

        # Client: the secret shown once, with a copy button.
        await page.get_by_role("link", name="New client").click()
        await page.get_by_label("Name", exact=True).fill("acme-web")
        await page.get_by_label("Redirect URIs").fill("http://localhost:3000/api/auth/callback")
        await page.get_by_role("button", name="Create", exact=True).click()
        assert "shown only once" in await page.inner_text("main")
        assert await page.get_by_role("button", name="Copy secret").count() == 1
        await page.get_by_role("link", name="Continue").click()
        clients = (await admin.issuer(issuer_id).clients.list()).data
        assert [c.name for c in clients] == ["acme-web"]

        # Organization (this fires the webhook, which fails).
        await page.get_by_role("link", name="Organizations", exact=True).click()
        await page.get_by_role("link", name="New organization").click()
        await page.get_by_label("Name", exact=True).fill("Globex Corp")
        await page.get_by_role("button", name="Create", exact=True).click()
        await page.wait_for_url(re.compile(r".*/organizations/org_[0-9a-z]+.*"))
        org_id = re.search(r"/organizations/(org_[0-9a-z]+)", page.url).group(1)  # type: ignore[union-attr]
        org_url = page.url.split("?")[0]
        assert (await admin.issuer(issuer_id).organizations.get(org_id)).name == "Globex Corp"

        # A user, then the member with scopes.
        await page.get_by_role("link", name="Users", exact=True).click()
        await page.get_by_role("link", name="New user").click()
        await page.get_by_label("Email").fill("ada@globex.example")
        await page.get_by_label("First name").fill("Ada")
        await page.get_by_role("button", name="Create", exact=True).click()
        await page.wait_for_url(re.compile(r".*/users/usr_[0-9a-z]+.*"))
        user_id = re.search(r"/users/(usr_[0-9a-z]+)", page.url).group(1)  # type: ignore[union-attr]
        await check("user")
        await page.goto(org_url)
        await page.get_by_label("User ID").fill(user_id)
        await page.get_by_label("Member scopes").fill("invoices:read\ninvoices:write")
        await page.get_by_role("button", name="Add member").click()
        assert "Member added." in await page.inner_text("main")
        members = (await admin.issuer(issuer_id).organization(org_id).members.list()).data
        assert [(m.member_id, sorted(m.scopes)) for m in members] == [
            (user_id, ["invoices:read", "invoices:write"])
        ]

        # An organization API key: its secret shown once.
        await page.get_by_label("Key name").fill("globex-backend")
        await page.get_by_label("Key scopes").fill("invoices:read")
        await page.get_by_role("button", name="Create", exact=True).click()
        secret = await page.inner_text("#c-secret")
        key_id = re.search(r"(key_[0-9a-z]+)", await page.inner_text("main")).group(1)  # type: ignore[union-attr]
        keys = (await admin.issuer(issuer_id).organization(org_id).api_keys.list()).data
        assert [k.id for k in keys] == [key_id]
        async with AuthPIAdmin(api_key=(key_id, secret), base_url=base) as caller:
            me = await caller.whoami()
        assert me["organizations"][0]["org_id"] == org_id
        await page.get_by_role("link", name="Continue").click()

        # Enterprise SSO: a SAML attempt shows the API's error next to its field; then OIDC is saved.
        await page.get_by_label("Enable SSO").check()
        await page.get_by_label("Connection type").select_option("saml")
        await page.get_by_label("Upstream issuer").fill("https://idp.globex.example")
        await page.get_by_label("Client ID", exact=True).fill("authpi")
        await page.get_by_label("Client secret").fill("idp-secret-1")
        await page.get_by_role("button", name="Save SSO").click()
        assert "SAML connections are not supported" in await page.inner_text("#f-sso-connection-type-err")
        await check("organization-sso-error")
        await page.get_by_label("Connection type").select_option("oidc")
        await page.get_by_label("Client secret").fill("idp-secret-1")
        await page.get_by_role("button", name="Save SSO").click()
        assert "Enterprise SSO enabled." in await page.inner_text("main")
        sso = (await admin.issuer(issuer_id).organizations.get(org_id)).sso or {}
        assert sso["connection"]["client_secret_set"] is True
        assert "idp-secret-1" not in await page.content()

        # The events of all of it, on the Events page.
        await page.get_by_role("link", name="Events", exact=True).click()
        table = await page.inner_text("table")
        for event_type in (
            "issuer.created",
            "client.created",
            "organization.created",
            "user.created",
            "organization.membership.created",
            "api-key.created",
        ):
            assert event_type in table, event_type
        await page.get_by_label("Subject ID").fill(org_id)
        await page.get_by_role("button", name="Filter").click()
        filtered = await page.inner_text("table")
        assert "organization.created" in filtered
        assert "issuer.created" not in filtered
        await page.get_by_role("link", name=re.compile("^evt_")).first.click()
        assert '"spec": "authpi.event/1.0"' in await page.inner_text("pre")
        await check("event")

        # The failed webhook delivery, redelivered.
        async def failed() -> bool:
            deliveries = (await admin.webhook(hook.id).deliveries.list()).data
            return any(d.status == "failed" for d in deliveries)

        assert await eventually(failed), "the webhook delivery did not fail"
        await page.get_by_role("link", name="Webhooks", exact=True).click()
        await page.get_by_role("link", name="ops-hook").click()
        row = page.locator("tbody tr").first
        assert "failed" in await row.inner_text()
        assert "500" in await row.inner_text()
        await check("webhook")
        await page.screenshot(path=str(SHOTS / "webhook-failed-1280.png"))
        receiver.default_status[hook_path] = 200
        await row.get_by_role("button", name="Redeliver").click()
        assert "succeeded" in await page.inner_text(".notice")
        assert "succeeded" in await page.locator("tbody tr").first.inner_text()

        # Suspend the organization: its key stops working at once.
        await page.goto(org_url)
        await page.get_by_role("button", name="Suspend").click()
        assert "Organization suspended." in await page.inner_text("main")
        async with httpx.AsyncClient() as http:
            me_after = await http.get(base + "/v1/me", auth=(key_id, secret))
        assert me_after.status_code == 401

        # The events' live tail shows an event made elsewhere, without a reload.
        await page.goto(base + "/console/events")
        await page.get_by_label("Live tail").check()
        probe = await admin.issuers.create({"name": "tail-probe"})
        await page.get_by_text(f"issuer {probe.id}").wait_for(timeout=15_000)

        # /docs and /redoc render with every request answered by authpi itself.
        outside: list[str] = []

        async def only_local(route: Any) -> None:
            if route.request.url.startswith(base):
                await route.continue_()
            else:
                outside.append(route.request.url)
                await route.abort()

        docs = await context.new_page()
        await docs.route("**/*", only_local)
        await docs.goto(base + "/docs")
        await docs.locator(".swagger-ui .info .title").wait_for(timeout=30_000)
        assert "authpi" in await docs.locator(".swagger-ui .info .title").inner_text()
        await docs.goto(base + "/redoc")
        await docs.get_by_role("heading", name=re.compile("authpi")).first.wait_for(timeout=30_000)
        await docs.close()
        assert outside == []

        # Every main page at both widths: axe-core, and a screenshot.
        pages = {
            "overview": "/console",
            "issuers": "/console/issuers",
            "issuer": f"/console/issuers/{issuer_id}",
            "organizations": f"/console/organizations?issuer={issuer_id}",
            "organization": org_url.replace(base, ""),
            "users": f"/console/users?issuer={issuer_id}",
            "agents": f"/console/agents?issuer={issuer_id}",
            "webhooks": "/console/webhooks",
            "webhook": f"/console/webhooks/{hook.id}",
            "events": "/console/events",
            "api-keys": "/console/api-keys",
            "new-issuer": "/console/issuers/new",
        }
        for width, height in WIDTHS.values():
            await page.set_viewport_size({"width": width, "height": height})
            for name, path in pages.items():
                response = await page.goto(base + path)
                assert response is not None
                assert response.status == 200, path
                await check(f"{name}@{width}")
                await page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
        await browser.close()

    bad = {name: v for name, v in checked.items() if v}
    assert not bad, bad
    assert not csp_errors, csp_errors
