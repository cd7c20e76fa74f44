"""The hosted pages as browsers, password managers and screen readers see them: labels and
autocomplete tokens on every input, everything but the passkey ceremony without JavaScript,
branding constrained to safe values, English and German catalogs, and axe-core clean."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pyotp
import pytest
from authpi_admin import AuthPIAdmin

from tests.e2e.test_signin_browser import CHROMIUM, Session, _later_code
from tests.e2e.test_signin_browser import localhost_server as localhost_server  # the fixture
from tests.oidc.helpers import PASSWORD, OidcSetup, make_setup

AXE = Path(__file__).parent / "node" / "node_modules" / "axe-core" / "axe.min.js"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed")
LABELS_AND_AUTOCOMPLETE = """() => [
  ...document.querySelectorAll('input:not([type=hidden]):not([type=checkbox])')]
  .map(i => ({id: i.id, autocomplete: i.getAttribute('autocomplete'),
              label: !!(i.id && document.querySelector('label[for="' + i.id + '"]'))}))"""


@pytest.fixture
async def setup(admin: AuthPIAdmin) -> OidcSetup:
    return await make_setup(admin)


@pytest.fixture
async def chromium() -> AsyncIterator:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        yield browser
        await browser.close()


async def axe_violations(page) -> list[dict]:
    """axe-core (the npm package in tests/e2e/node) run in the page; serious and critical only."""
    if not AXE.exists():
        pytest.skip("run `npm ci` in tests/e2e/node first (axe-core)")
    await page.evaluate(AXE.read_text())
    result = await page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [{"id": v["id"], "impact": v["impact"], "nodes": [n["html"] for n in v["nodes"]]}
            for v in result["violations"] if v["impact"] in ("serious", "critical")]


async def _checked(page, seen: dict[str, str]) -> None:
    """Keep the page as served (checked later in a page with scripts: this one has none)."""
    seen[f"{len(seen)} {page.url.split('?')[0]}"] = await page.content()


async def _audit(chromium, seen: dict[str, str]) -> dict[str, list]:
    context = await chromium.new_context()
    await context.route("https://**", lambda route: route.fulfill(status=404))
    page = await context.new_page()
    problems: dict[str, list] = {}
    for name, html in seen.items():
        await page.set_content(html)
        for field in await page.evaluate(LABELS_AND_AUTOCOMPLETE):
            assert field["label"], (name, field)
            assert field["autocomplete"], (name, field)
        violations = await axe_violations(page)
        if violations:
            problems[name] = violations
    await context.close()
    return problems


class TestPagesWithAxeAndWithoutJavaScript:
    async def test_every_step_is_accessible_and_works_without_javascript(
            self, localhost_server, setup: OidcSetup, admin: AuthPIAdmin, chromium) -> None:
        await admin.issuers.update(setup.issuer_id, {"settings": {"access": {}, "branding": {
            "name": "Acme Login", "logo_url": "https://cdn.acme.example/logo.png",
            "primary_color": "#ffcc00"}}})
        await admin.issuer(setup.issuer_id).organizations.update(
            setup.org_id, {"security": {"mfa_required": True}})
        seen: dict[str, str] = {}
        context = await chromium.new_context(java_script_enabled=False)
        s = Session(await context.new_page(), localhost_server, setup)
        s.page.on("request", lambda r: s.captured.append(r.url) if r.url.startswith("http://localhost:3000")
                  else None)
        await context.route("http://localhost:3000/**", lambda route: route.fulfill(status=200, body="ok"))
        await context.route("https://cdn.acme.example/**", lambda route: route.fulfill(status=404))
        await s.page.goto(s.authorize_url())
        await _checked(s.page, seen)
        assert await s.page.get_attribute("#username", "autocomplete") == "username webauthn"
        assert await s.page.get_attribute("#password", "autocomplete") == "current-password"
        assert await s.page.title() == "Sign in · Acme Login"
        await s.page.fill("#username", setup.username)
        await s.page.fill("#password", "wrong")
        await s.page.click("#submit")
        await _checked(s.page, seen)
        await s.page.fill("#password", PASSWORD)
        await s.page.click("#submit")
        # Enrolment: the QR code is an image rendered by the server; no script needed.
        await s.page.wait_for_url("**/login/enrol")
        await _checked(s.page, seen)
        secret = await s.page.inner_text("#secret")
        await s.page.fill("#code", pyotp.TOTP(secret).now())
        await s.page.click("#submit")
        await s.page.wait_for_selector("#backup-codes")
        await _checked(s.page, seen)
        await s.page.click("#continue")
        claims = await s.landed()
        assert claims["acr"] == "urn:authpi:acr:2fa"
        # The second-factor step, again without JavaScript.
        await s.page.goto(s.authorize_url(prompt="login"))
        await s.page.fill("#username", setup.username)
        await s.page.fill("#password", PASSWORD)
        await s.page.click("#submit")
        await s.page.wait_for_url("**/login/second-factor")
        await s.page.fill("#code", "000000" if _later_code(secret) != "000000" else "111111")
        await s.page.click("#submit")
        await _checked(s.page, seen)
        await s.page.fill("#code", _later_code(secret))
        await s.page.click("#submit")
        await s.landed()
        await s.page.goto(f"{localhost_server.url}/{setup.issuer_id}/passkeys")
        await _checked(s.page, seen)
        await context.close()
        assert len(seen) == 6
        assert await _audit(chromium, seen) == {}


class TestLocalesAndBranding:
    async def test_ui_locales_then_accept_language(self, localhost_server, setup: OidcSetup,
                                                   chromium) -> None:
        de, en = "Bei acme-prod anmelden", "Sign in to acme-prod"
        for locale, extra, heading, lang in (("de-DE", {}, de, "de"),
                                             ("de-DE", {"ui_locales": "en"}, en, "en"),
                                             ("en-US", {"ui_locales": "de fr"}, de, "de"),
                                             ("fr-FR", {}, en, "en")):
            context = await chromium.new_context(locale=locale)
            s = Session(await context.new_page(), localhost_server, setup)
            await s.page.goto(s.authorize_url(**extra))
            assert await s.page.inner_text("h1") == heading
            assert await s.page.get_attribute("html", "lang") == lang
            if lang == "de":
                assert await s.page.inner_text("label[for=password]") == "Passwort"
                await s.page.fill("#username", setup.username)
                await s.page.fill("#password", "wrong")
                await s.page.click("#submit")
                assert await s.page.inner_text("#error") == "Benutzername oder Passwort ist falsch."
            await context.close()

    async def test_branding_is_escaped_and_constrained(self, setup: OidcSetup, admin: AuthPIAdmin,
                                                       http_app: httpx.AsyncClient) -> None:
        await admin.issuers.update(setup.issuer_id, {"settings": {"access": {}, "branding": {
            "name": "<script>alert(1)</script>", "logo_url": "javascript:alert(1)",
            "primary_color": "red;}body{display:none"}}})
        r = await http_app.get(f"/{setup.issuer_id}/authorize", params={
            "client_id": setup.web_id, "redirect_uri": "http://localhost:3000/api/auth/callback",
            "response_type": "code", "scope": "openid", "code_challenge": "x" * 43,
            "code_challenge_method": "S256"})
        page = await http_app.get(r.headers["location"])
        assert "<script>alert" not in page.text
        assert "&lt;script&gt;" in page.text
        assert "javascript:" not in page.text
        assert "display:none" not in page.text
        assert "background:#222222" in page.text
        await admin.issuer(setup.issuer_id).organizations.update(setup.org_id, {
            "name": "Globex Corp", "logo_url": "https://globex.example/logo.svg"})
        await admin.issuers.update(setup.issuer_id, {"settings": {"access": {}, "branding": {
            "name": "Acme", "primary_color": "#0a58ca", "logo_url": "http://insecure.example/l.png"}}})
        r = await http_app.get(f"/{setup.issuer_id}/authorize", params={
            "client_id": setup.web_id, "redirect_uri": "http://localhost:3000/api/auth/callback",
            "response_type": "code", "scope": "openid", "code_challenge": "x" * 43,
            "code_challenge_method": "S256", "org": setup.org_id})
        page = await http_app.get(r.headers["location"])
        assert "Sign in to Globex Corp" in page.text
        assert 'src="https://globex.example/logo.svg"' in page.text
        assert "insecure.example" not in page.text
        assert "background:#0a58ca" in page.text
        assert re.search(r"<title>Sign in · Acme</title>", page.text)


@pytest.fixture
async def http_app(app) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver",
                                 headers={"Origin": "http://testserver"}) as c:
        yield c


class TestPasskeysOnAnIpHost:
    async def test_enrolment_is_refused_with_a_clear_message(self, live_server, setup: OidcSetup,
                                                             admin: AuthPIAdmin) -> None:
        from tests.hosted.helpers import Browser, csrf

        async with httpx.AsyncClient(headers={"Origin": live_server.url}) as http:
            b = Browser(http, setup, base=live_server.url)
            await b.follow(await b.password())
            page = await http.get(f"{live_server.url}/{setup.issuer_id}/passkeys")
            assert "IP address" in page.text
            assert 'id="passkey-create"' not in page.text
            login = await http.get(b.authorize_url(prompt="login"))
            login_page = await http.get(live_server.url + login.headers["location"])
            assert "passkey-sign-in" not in login_page.text
            r = await http.post(f"{live_server.url}/{setup.issuer_id}/login/passkey/register-options",
                                data={"csrf": csrf(login_page.text)})
            assert r.status_code == 400
            assert "IP address" in r.json()["message"]
        listed = (await admin.issuer(setup.issuer_id).user(setup.user_id).verifiers.list()).data
        assert [v for v in listed if v.model_dump()["type"] == "passkey"] == []




class TestAxeSeesProblems:
    async def test_an_unlabelled_input_is_a_violation(self, chromium) -> None:
        page = await chromium.new_page()
        await page.set_content('<html lang="en"><head><title>x</title></head><body><main>'
                               '<input type="text"></main></body></html>')
        assert "label" in [v["id"] for v in await axe_violations(page)]
        await page.close()
