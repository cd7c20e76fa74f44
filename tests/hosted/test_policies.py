"""Policies that hold: mfa_required (organization and issuer) with enrolment on the hosted pages,
disabled auth methods, step-up (prompt=login, max_age, acr_values, prompt=none) and discovery."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pyotp
from authpi_admin import AuthPIAdmin

from tests.conftest import AccountCredentials
from tests.hosted.helpers import Browser, browser_of, claims_of, csrf, enrol_totp, next_code
from tests.oidc.helpers import REDIRECT, OidcSetup

BASE = "http://testserver"


async def _count(pg: asyncpg.Pool, table: str, user_id: str) -> int:
    return int(await pg.fetchval(f"SELECT count(*) FROM {table} WHERE user_id = $1", user_id))


async def _event_data(pg: asyncpg.Pool, account_id: str, type: str) -> list[dict]:
    import json
    rows = await pg.fetch("SELECT data FROM events WHERE account_id = $1 AND type = $2 ORDER BY id",
                          account_id, type)
    return [json.loads(r["data"]) if isinstance(r["data"], str) else dict(r["data"]) for r in rows]


async def _require_mfa(admin: AuthPIAdmin, setup: OidcSetup) -> None:
    await admin.issuer(setup.issuer_id).organizations.update(
        setup.org_id, {"security": {"mfa_required": True}})


async def _enrol_on_page(http: httpx.AsyncClient, setup: OidcSetup) -> httpx.Response:
    page = await http.get(f"{BASE}/{setup.issuer_id}/login/enrol")
    assert page.status_code == 200, page.text
    assert 'src="data:image/svg+xml;base64,' in page.text  # the QR code, rendered here
    secret = re.search(r'<code id="secret">([A-Z2-7]+)</code>', page.text).group(1)
    return await http.post(f"{BASE}/{setup.issuer_id}/login/enrol",
                           data={"csrf": csrf(page.text), "code": pyotp.TOTP(secret).now()})


class TestMfaRequired:
    async def test_password_alone_gets_no_code_and_enrolment_follows(
            self, admin: AuthPIAdmin, account: AccountCredentials, setup: OidcSetup,
            http: httpx.AsyncClient, app, pg: asyncpg.Pool) -> None:
        await _require_mfa(admin, setup)
        browser = Browser(http, setup)
        r = await browser.password()
        assert r.status_code == 303
        assert r.headers["location"].endswith("/login/enrol")
        verifier = browser.verifier
        # Not even prompt=none in this browser, nor a second tab of it, gets a code.
        silent = await http.get(browser.authorize_url(prompt="none"))
        assert parse_qs(urlsplit(silent.headers["location"]).query)["error"] == ["login_required"]
        second_tab = await http.get(browser.authorize_url())
        assert "/login?" in second_tab.headers["location"]
        assert await _count(pg, "authorization_codes", setup.user_id) == 0
        assert await _count(pg, "login_sessions", setup.user_id) == 0
        done = await _enrol_on_page(http, setup)
        assert done.status_code == 200
        codes = re.findall(r"<li><code>([a-z2-7]{4}-[a-z2-7]{4})</code></li>", done.text)
        assert len(codes) == 10
        next_url = re.search(r'href="([^"]+)" id="continue"', done.text).group(1).replace("&amp;", "&")
        final = await browser.follow(await http.get(BASE + next_url))
        browser.verifier = verifier
        claims = claims_of((await browser.tokens(final))["id_token"])
        assert claims["acr"] == "urn:authpi:acr:2fa"
        listed = (await admin.issuer(setup.issuer_id).user(setup.user_id).verifiers.list()).data
        assert [v.model_dump()["type"] for v in listed].count("totp") == 1

    async def test_a_password_session_is_stepped_up_when_the_policy_turns_on(
            self, admin: AuthPIAdmin, account: AccountCredentials, setup: OidcSetup,
            http: httpx.AsyncClient, pg: asyncpg.Pool) -> None:
        browser = Browser(http, setup)
        await browser.tokens(await browser.follow(await browser.password()))
        assert await _count(pg, "authorization_codes", setup.user_id) == 1
        await _require_mfa(admin, setup)
        silent = await http.get(browser.authorize_url(prompt="none"))
        assert silent.status_code == 302
        query = parse_qs(urlsplit(silent.headers["location"]).query)
        assert query["error"] == ["login_required"]
        assert silent.headers["location"].startswith(REDIRECT)
        again = await http.get(browser.authorize_url())
        assert "/login?" in again.headers["location"]
        assert await _count(pg, "authorization_codes", setup.user_id) == 1
        events = await _event_data(pg, account.account_id, "user.verification.failed")
        assert events[-1]["reason"] == "second_factor_required"

    async def test_issuer_policy_applies_to_users_outside_organizations(
            self, admin: AuthPIAdmin, setup: OidcSetup, http: httpx.AsyncClient, pg: asyncpg.Pool) -> None:
        await admin.issuers.update(setup.issuer_id, {"settings": {
            "access": {}, "security": {"mfa_required": True}}})
        await admin.issuer(setup.issuer_id).organization(setup.org_id).members.delete(setup.user_id)
        r = await Browser(http, setup).password()
        assert r.headers["location"].endswith("/login/enrol")
        assert await _count(pg, "login_sessions", setup.user_id) == 0


class TestDisabledMethods:
    async def test_disabled_password_is_not_offered_and_refused(
            self, admin: AuthPIAdmin, account: AccountCredentials, setup: OidcSetup,
            http: httpx.AsyncClient, pg: asyncpg.Pool) -> None:
        browser = Browser(http, setup)
        r = await http.get(browser.authorize_url())
        login_url = BASE + r.headers["location"]
        page = await http.get(login_url)
        await admin.issuer(setup.issuer_id).auth_methods.create({"type": "password", "enabled": False})
        assert 'type="password"' not in (await http.get(login_url)).text
        from tests.oidc.helpers import PASSWORD, form_fields
        refused = await http.post(login_url.split("?")[0], data={
            **form_fields(page.text), "username": setup.username, "password": PASSWORD})
        assert refused.status_code == 403
        assert await _count(pg, "login_sessions", setup.user_id) == 0
        assert await _count(pg, "pending_signins", setup.user_id) == 0
        events = await _event_data(pg, account.account_id, "user.verification.failed")
        assert events[-1]["reason"] == "method_disabled"

    async def test_disabled_totp_stops_enrolment_but_enrolled_users_are_still_asked(
            self, admin: AuthPIAdmin, account: AccountCredentials, setup: OidcSetup, app,
            pg: asyncpg.Pool) -> None:
        await _require_mfa(admin, setup)
        await admin.issuer(setup.issuer_id).auth_methods.create({"type": "totp", "enabled": False})
        async with browser_of(app) as http:
            b = Browser(http, setup)
            await b.password()
            page = await http.get(f"{BASE}/{setup.issuer_id}/login/enrol")
            assert 'id="secret"' not in page.text  # not offered
            before = await _count(pg, "user_verifiers", setup.user_id)
            refused = await http.post(f"{BASE}/{setup.issuer_id}/login/enrol",
                                      data={"csrf": csrf(page.text), "code": "123456"})
            assert refused.status_code == 403
            assert await _count(pg, "user_verifiers", setup.user_id) == before
            assert await _count(pg, "login_sessions", setup.user_id) == 0
        events = await _event_data(pg, account.account_id, "user.verification.failed")
        assert events[-1]["reason"] == "method_disabled"
        # A user enrolled before the switch is still asked for the code.
        _, secret, _ = await enrol_totp(admin, setup.issuer_id, setup.user_id)
        async with browser_of(app) as http:
            b = Browser(http, setup)
            r = await b.password()
            assert r.headers["location"].endswith("/login/second-factor")
            await b.tokens(await b.follow(await b.second_factor(next_code(secret))))


class TestStepUp:
    async def test_max_age_zero_asks_again(
            self, account: AccountCredentials, setup: OidcSetup, http: httpx.AsyncClient,
            pg: asyncpg.Pool) -> None:
        browser = Browser(http, setup)
        await browser.tokens(await browser.follow(await browser.password()))
        import asyncio
        await asyncio.sleep(1.05)
        r = await http.get(browser.authorize_url(max_age="0"))
        verifier = browser.verifier
        assert "/login?" in r.headers["location"]
        assert await _count(pg, "authorization_codes", setup.user_id) == 1
        assert (await _event_data(pg, account.account_id, "auth.flow.expired"))[-1]["reason"] == "max_age"
        silent = await http.get(browser.authorize_url(max_age="0", prompt="none"))
        assert parse_qs(urlsplit(silent.headers["location"]).query)["error"] == ["login_required"]
        # Signing in again satisfies it (no loop back to the login page).
        from tests.oidc.helpers import PASSWORD, form_fields
        page = await http.get(BASE + r.headers["location"])
        browser.verifier = verifier
        done = await http.post(BASE + r.headers["location"].split("?")[0], data={
            **form_fields(page.text), "username": setup.username, "password": PASSWORD})
        final = await browser.follow(done)
        await browser.tokens(final)

    async def test_prompt_login_asks_again(self, setup: OidcSetup, http: httpx.AsyncClient) -> None:
        browser = Browser(http, setup)
        await browser.tokens(await browser.follow(await browser.password()))
        r = await http.get(browser.authorize_url(prompt="login"))
        assert "/login?" in r.headers["location"]

    async def test_acr_values_two_factor_steps_up_a_password_session(
            self, admin: AuthPIAdmin, setup: OidcSetup, http: httpx.AsyncClient) -> None:
        _, secret, _ = await enrol_totp(admin, setup.issuer_id, setup.user_id)
        browser = Browser(http, setup)
        await browser.password()
        await browser.tokens(await browser.follow(await browser.second_factor(next_code(secret))))
        silent = await http.get(browser.authorize_url(prompt="none", acr_values="urn:authpi:acr:2fa"))
        assert "code" in parse_qs(urlsplit(silent.headers["location"]).query)
        phr = await http.get(browser.authorize_url(prompt="none", acr_values="phr"))
        assert parse_qs(urlsplit(phr.headers["location"]).query)["error"] == ["login_required"]

    async def test_discovery_lists_acr_values_and_claims(self, setup: OidcSetup,
                                                         http: httpx.AsyncClient) -> None:
        meta = (await http.get(f"{BASE}/{setup.issuer_id}/.well-known/openid-configuration")).json()
        assert meta["acr_values_supported"] == ["urn:authpi:acr:1fa", "urn:authpi:acr:2fa", "phr"]
        assert {"acr", "amr", "auth_time"} <= set(meta["claims_supported"])
        assert meta["ui_locales_supported"] == ["de", "en"]
