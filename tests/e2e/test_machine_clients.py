"""panva's openid-client (Node) against a live issuer: dynamic client registration, the device
authorization grant (a headless Chromium approves the code on the hosted page) and token exchange
with the `act` claim; and their refusals."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from authpi_admin import AuthPIAdmin

from tests.oidc.helpers import PASSWORD, get_code, make_setup
from tests.oidc.test_agent_tokens import make_agent
from tests.oidc.test_token_exchange import USER_SCOPES, user_setup

NODE_DIR = Path(__file__).parent / "node"
CHROMIUM = "/usr/bin/chromium"
DEVICE = "urn:ietf:params:oauth:grant-type:device_code"
CALLBACK = "http://127.0.0.1:33418/callback"

pytestmark = [
    pytest.mark.skipif(shutil.which("node") is None, reason="Node 20 is not installed"),
    pytest.mark.skipif(not (NODE_DIR / "node_modules" / "openid-client").exists(),
                       reason="run `npm ci` in tests/e2e/node first"),
]


async def node(*args: str) -> list[dict]:
    proc = await asyncio.create_subprocess_exec("node", str(NODE_DIR / "machine.mjs"), *args, cwd=NODE_DIR,
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=90)
    assert proc.returncode == 0, err.decode()
    return [json.loads(line) for line in out.decode().splitlines() if line.strip()]


async def set_registration(admin: AuthPIAdmin, issuer_id: str, mode: str) -> None:
    await admin.issuers.update(issuer_id, {"settings": {"access": {"mode": "public"},
                                                        "security": {"client_registration": mode}}})


class TestDynamicClientRegistration:
    async def test_open_and_token_modes(self, live_server, admin: AuthPIAdmin, account) -> None:
        s = await make_setup(admin)
        issuer = s.issuer_url(live_server.url)
        off = await node("register", issuer, CALLBACK)
        assert "error" in off[0]
        await set_registration(admin, s.issuer_id, "open")
        [done] = await node("register", issuer, CALLBACK)
        assert "error" not in done, done
        meta = done["metadata"]
        assert meta["client_id"].startswith("c_")
        assert meta["client_secret"]
        assert meta["registration_access_token"]
        assert done["server"]["registration_endpoint"] == f"{issuer}/register"
        listed = {c.id: c for c in (await admin.issuer(s.issuer_id).clients.list()).data}
        assert listed[meta["client_id"]].type == "third_party"
        # A bad redirect URI is refused.
        [bad] = await node("register", issuer, "javascript:alert(1)")
        assert bad["error"] == "invalid_redirect_uri"
        # "token": without the initial access token, refused; with it, registered.
        await set_registration(admin, s.issuer_id, "token")
        [refused] = await node("register", issuer, CALLBACK)
        assert "error" in refused
        async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as http:
            r = await http.post(f"/v1/accounts/{account.account_id}/issuers/{s.issuer_id}"
                                "/registration-tokens", auth=account.basic)
            token = r.json()["data"]["token"]
        [ok] = await node("register", issuer, CALLBACK, token)
        assert "error" not in ok, ok
        before = len((await admin.issuer(s.issuer_id).clients.list()).data)
        [again] = await node("register", issuer, CALLBACK, token)
        assert "error" in again
        assert len((await admin.issuer(s.issuer_id).clients.list()).data) == before


@pytest.fixture
async def fast_polling(live_server) -> AsyncIterator[None]:
    settings = live_server.server.config.app.state.settings
    before = settings.device_poll_interval_seconds
    settings.device_poll_interval_seconds = 1
    yield
    settings.device_poll_interval_seconds = before


def _no_chromium() -> str | None:
    return None if Path(CHROMIUM).exists() else "chromium is not installed"


@pytest.mark.skipif(_no_chromium() is not None, reason="chromium is not installed")
class TestDeviceAuthorization:
    async def _run(self, live_server, admin: AuthPIAdmin, button: str) -> tuple[dict, list[dict], object]:
        from playwright.async_api import async_playwright

        s = await make_setup(admin)
        tv = await admin.issuer(s.issuer_id).clients.create({
            "name": "Living-room TV", "confidential": False,
            "settings": {"scopes": ["openid", "profile", "offline_access"], "openid": {
                "application_type": "native", "grant_types": [DEVICE, "refresh_token"]}}})
        proc = await asyncio.create_subprocess_exec(
            "node", str(NODE_DIR / "machine.mjs"), "device", s.issuer_url(live_server.url), tv.id,
            "openid profile offline_access", cwd=NODE_DIR, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        assert proc.stdout is not None
        first = await asyncio.wait_for(proc.stdout.readline(), timeout=60)
        device = json.loads(first)["device"]
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                               args=["--no-sandbox", "--disable-dev-shm-usage"])
            page = await browser.new_page()
            await page.goto(device["verification_uri_complete"])
            await page.fill("#username", s.username)
            await page.fill("#password", PASSWORD)
            await page.click("#submit")
            await page.wait_for_selector(f"#{button}")
            assert await page.inner_text("#user-code") == device["user_code"]
            await page.click(f"#{button}")
            await page.wait_for_selector("#message")
            message = await page.inner_text("#message")
            await browser.close()
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
        assert proc.returncode == 0, err.decode()
        results = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
        return device, results, (s, message)

    async def test_approved_on_the_hosted_page(self, live_server, admin: AuthPIAdmin,
                                               fast_polling: None) -> None:
        device, [result], (s, message) = await self._run(live_server, admin, "approve")
        assert "connected" in message
        assert "error" not in result, result
        assert result["claims"]["sub"] == s.user_id
        assert result["id_claims"]["sub"] == s.user_id
        assert result["tokens"]["refresh_token"]
        assert device["interval"] == 1

    async def test_denied(self, live_server, admin: AuthPIAdmin, fast_polling: None) -> None:
        _, [result], (_, message) = await self._run(live_server, admin, "deny")
        assert "denied" in message
        assert result["error"] == "access_denied"


class TestTokenExchange:
    async def test_delegated_token_with_act(self, live_server, admin: AuthPIAdmin) -> None:
        s = await user_setup(admin)
        issuer = s.issuer_url(live_server.url)
        async with httpx.AsyncClient(timeout=30) as http:
            code, verifier = await get_code(http, s, base=live_server.url, scope=USER_SCOPES)
            r = await http.post(f"{issuer}/token", data={
                "grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                "redirect_uri": "http://localhost:3000/api/auth/callback", "client_id": s.web_id,
                "client_secret": s.web_secret})
            assert r.status_code == 200, r.text
            user_token = r.json()["access_token"]
        agent = await make_agent(admin, s.issuer_id, scopes=["invoices:read", "reports:read"])
        [done] = await node("exchange", issuer, agent.agent_id, agent.secret, user_token)
        assert "error" not in done, done
        assert done["response"]["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
        assert done["claims"]["sub"] == s.user_id
        assert done["claims"]["act"] == {"sub": agent.agent_id}
        assert done["claims"]["scope"] == "invoices:read"
        # Escalation and crossing issuers are refused.
        [escalated] = await node("exchange", issuer, agent.agent_id, agent.secret, user_token,
                                 "invoices:write")
        assert escalated["error"] == "invalid_scope"
        other = await make_agent(admin, scopes=["invoices:read"])
        [crossed] = await node("exchange", f"{live_server.url}/{other.issuer_id}", other.agent_id,
                               other.secret, user_token)
        assert crossed["error"] == "invalid_grant"
