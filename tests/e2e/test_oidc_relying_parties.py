"""Standard relying parties against a live issuer: authlib (discovery), openid-client v6 (Node 20),
and a real headless Chromium (Playwright on /usr/bin/chromium) signing in through the hosted page."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.jose import JsonWebKey, jwt
from authpi_admin import AuthPIAdmin

from tests.oidc.helpers import PASSWORD, REDIRECT, authorize_params, make_setup, pkce_pair, sign_in

NODE_DIR = Path(__file__).parent / "node"
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
async def setup(admin: AuthPIAdmin):
    return await make_setup(admin)


class TestAuthlibRelyingParty:
    async def test_discovery_code_pkce_id_token_userinfo(self, live_server, setup) -> None:
        issuer = setup.issuer_url(live_server.url)
        async with httpx.AsyncClient() as http:
            meta = (await http.get(f"{issuer}/.well-known/openid-configuration")).json()
            assert meta["issuer"] == issuer
            jwks = JsonWebKey.import_key_set((await http.get(meta["jwks_uri"])).json())
        rp = AsyncOAuth2Client(setup.web_id, setup.web_secret, scope="openid profile email",
                               redirect_uri=REDIRECT, code_challenge_method="S256",
                               token_endpoint_auth_method="client_secret_basic")
        verifier = "v" * 20 + "x" * 30
        url, state = rp.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier,
                                                 nonce="authlib-nonce")
        async with httpx.AsyncClient() as browser:
            final = await sign_in(browser, url, setup.username)
        assert final.status_code == 302
        token = await rp.fetch_token(meta["token_endpoint"], authorization_response=final.headers["location"],
                                     code_verifier=verifier, state=state)
        claims = jwt.decode(token["id_token"], jwks, claims_options={
            "iss": {"essential": True, "value": issuer}, "aud": {"essential": True, "value": setup.web_id},
            "nonce": {"essential": True, "value": "authlib-nonce"}})
        claims.validate()
        assert claims["sub"] == setup.user_id
        assert claims["organizations"][0]["id"] == setup.org_id
        info = (await rp.get(meta["userinfo_endpoint"])).json()
        assert info["sub"] == setup.user_id
        await rp.aclose()


async def _node(*args: str, script: str = "rp.mjs") -> dict:
    proc = await asyncio.create_subprocess_exec("node", str(NODE_DIR / script), *args, cwd=NODE_DIR,
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    return json.loads(out)


@pytest.mark.skipif(shutil.which("node") is None, reason="Node 20 is not installed")
@pytest.mark.skipif(not (NODE_DIR / "node_modules" / "openid-client").exists(),
                    reason="run `npm ci` (or `npm install`) in tests/e2e/node first")
class TestOpenidClientRelyingParty:
    async def test_discovery_code_pkce_id_token_userinfo(self, live_server, setup) -> None:
        issuer = setup.issuer_url(live_server.url)
        base = [issuer, setup.web_id, setup.web_secret, REDIRECT]
        start = await _node("start", *base)
        async with httpx.AsyncClient() as browser:
            final = await sign_in(browser, start["url"], setup.username)
        assert final.status_code == 302
        done = await _node("finish", *base, final.headers["location"], start["verifier"], start["state"],
                           start["nonce"])
        assert done["claims"]["sub"] == setup.user_id
        assert done["claims"]["iss"] == issuer
        assert done["userinfo"]["organizations"][0]["id"] == setup.org_id
        # openid-client reads how and when the user signed in.
        assert done["claims"]["amr"] == ["pwd"]
        assert done["claims"]["acr"] == "urn:authpi:acr:1fa"
        assert isinstance(done["claims"]["auth_time"], int)
        assert done["userinfo"]["acr"] == done["claims"]["acr"]

    async def test_two_factor_sign_in_claims(self, live_server, setup, admin: AuthPIAdmin) -> None:
        from urllib.parse import urljoin

        from tests.hosted.helpers import csrf, enrol_totp, next_code
        from tests.oidc.helpers import form_fields

        _, secret, _ = await enrol_totp(admin, setup.issuer_id, setup.user_id)
        issuer = setup.issuer_url(live_server.url)
        base = [issuer, setup.web_id, setup.web_secret, REDIRECT]
        start = await _node("start", *base)
        async with httpx.AsyncClient(headers={"Origin": live_server.url}) as browser:
            r = await browser.get(start["url"])
            login_url = urljoin(str(r.url), r.headers["location"])
            page = await browser.get(login_url)
            r = await browser.post(login_url.split("?")[0], data={
                **form_fields(page.text), "username": setup.username, "password": PASSWORD})
            second = urljoin(str(r.url), r.headers["location"])
            page = await browser.get(second)
            r = await browser.post(second, data={"csrf": csrf(page.text), "code": next_code(secret)})
            while not r.headers["location"].startswith(REDIRECT):
                r = await browser.get(urljoin(str(r.url), r.headers["location"]))
        done = await _node("finish", *base, r.headers["location"], start["verifier"], start["state"],
                           start["nonce"])
        assert done["claims"]["amr"] == ["pwd", "otp", "mfa"]
        assert done["claims"]["acr"] == "urn:authpi:acr:2fa"
        assert done["userinfo"]["amr"] == done["claims"]["amr"]


def _playwright_missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return "chromium is not installed (apt-get install -y chromium)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright)"
    return None


@pytest.mark.skipif(_playwright_missing() is not None, reason=str(_playwright_missing()))
class TestChromiumHostedLogin:
    async def test_sign_in_through_the_hosted_page(self, live_server, setup) -> None:
        from playwright.async_api import async_playwright

        verifier, challenge = pkce_pair()
        query = urlencode(authorize_params(setup, challenge))
        url = f"{setup.issuer_url(live_server.url)}/authorize?{query}"
        captured: list[str] = []
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"])
            page = await browser.new_page()

            async def callback(route) -> None:
                captured.append(route.request.url)
                await route.fulfill(status=200, body="ok", content_type="text/plain")

            await page.route("http://localhost:3000/**", callback)
            await page.goto(url)
            assert await page.title() == "Sign in · acme-prod"
            await page.fill("#username", setup.username)
            await page.fill("#password", "wrong password")
            await page.click("#submit")
            assert "incorrect" in await page.inner_text("#error")
            await page.fill("#password", PASSWORD)
            await page.click("#submit")
            await page.wait_for_url("http://localhost:3000/**")
            cookies = await page.context.cookies()
            await browser.close()
        query = parse_qs(urlsplit(captured[-1]).query)
        assert query["state"] == ["st-1"]
        session_cookies = [c for c in cookies if c["name"].startswith("authpi_session_")]
        assert session_cookies[0]["path"] == f"/{setup.issuer_id}"
        assert session_cookies[0]["httpOnly"] is True
        async with httpx.AsyncClient() as http:
            r = await http.post(f"{setup.issuer_url(live_server.url)}/token", data={
                "grant_type": "authorization_code", "code": query["code"][0], "redirect_uri": REDIRECT,
                "code_verifier": verifier, "client_id": setup.web_id, "client_secret": setup.web_secret})
        assert r.status_code == 200
        assert "id_token" in r.json()
