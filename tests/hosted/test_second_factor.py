"""TOTP and backup codes at the hosted sign-in: asked after the password, each code once, wrong
codes limited per sign-in and per user; refusals change nothing and leave an event."""

from __future__ import annotations

import asyncpg
import httpx
import pyotp
from authpi_admin import AuthPIAdmin

from tests.conftest import AccountCredentials
from tests.hosted.helpers import Browser, browser_of, claims_of, enrol_totp, next_code
from tests.oidc.helpers import OidcSetup


async def _sessions(pg: asyncpg.Pool, user_id: str) -> int:
    return int(await pg.fetchval("SELECT count(*) FROM login_sessions WHERE user_id = $1", user_id))


async def _codes(pg: asyncpg.Pool, user_id: str) -> int:
    return int(await pg.fetchval("SELECT count(*) FROM authorization_codes WHERE user_id = $1", user_id))


async def _events(pg: asyncpg.Pool, account_id: str, type: str) -> list[dict]:
    rows = await pg.fetch("SELECT data FROM events WHERE account_id = $1 AND type = $2 ORDER BY id",
                          account_id, type)
    import json
    return [json.loads(r["data"]) if isinstance(r["data"], str) else dict(r["data"]) for r in rows]


class TestTotpAtSignIn:
    async def test_password_then_code_issues_two_factor_tokens(
            self, admin: AuthPIAdmin, setup: OidcSetup, http: httpx.AsyncClient, pg: asyncpg.Pool) -> None:
        _, secret, _ = await enrol_totp(admin, setup.issuer_id, setup.user_id)
        browser = Browser(http, setup)
        r = await browser.password()
        assert r.status_code == 303
        assert r.headers["location"].endswith("/login/second-factor")
        # The password alone made no session and no code.
        assert await _sessions(pg, setup.user_id) == 0
        page = await http.get(f"http://testserver/{setup.issuer_id}/login/second-factor")
        assert 'autocomplete="one-time-code"' in page.text
        assert '<label for="code">' in page.text
        final = await browser.follow(await browser.second_factor(next_code(secret)))
        body = await browser.tokens(final)
        claims = claims_of(body["id_token"])
        assert claims["amr"] == ["pwd", "otp", "mfa"]
        assert claims["acr"] == "urn:authpi:acr:2fa"
        assert isinstance(claims["auth_time"], int)
        info = (await http.get(f"http://testserver/{setup.issuer_id}/userinfo",
                               headers={"Authorization": f"Bearer {body['access_token']}"})).json()
        assert (info["amr"], info["acr"], info["auth_time"]) == (claims["amr"], claims["acr"],
                                                                 claims["auth_time"])
        for token in (body["access_token"], body["refresh_token"]):
            intro = (await http.post(f"http://testserver/{setup.issuer_id}/introspect", data={
                "token": token}, auth=(setup.web_id, setup.web_secret))).json()
            assert intro["active"] is True
            assert (intro["amr"], intro["acr"], intro["auth_time"]) == (
                claims["amr"], claims["acr"], claims["auth_time"])

    async def test_wrong_code_changes_nothing_and_leaves_events(
            self, admin: AuthPIAdmin, account: AccountCredentials, setup: OidcSetup,
            http: httpx.AsyncClient, pg: asyncpg.Pool) -> None:
        _, secret, _ = await enrol_totp(admin, setup.issuer_id, setup.user_id)
        browser = Browser(http, setup)
        await browser.password()
        good = next_code(secret)
        wrong = "000000" if good != "000000" else "111111"
        r = await browser.second_factor(wrong)
        assert r.status_code == 401
        assert "not valid" in r.text
        assert await _sessions(pg, setup.user_id) == 0
        assert await _codes(pg, setup.user_id) == 0
        failed = await _events(pg, account.account_id, "user.verification.failed")
        assert failed[-1]["reason"] == "invalid_code"
        assert await _events(pg, account.account_id, "user.mfa.verification.failed")

    async def test_a_code_is_accepted_once(
            self, admin: AuthPIAdmin, account: AccountCredentials, setup: OidcSetup, app,
            pg: asyncpg.Pool) -> None:
        _, secret, _ = await enrol_totp(admin, setup.issuer_id, setup.user_id)
        code = next_code(secret)
        async with browser_of(app) as a:
            first = Browser(a, setup)
            await first.password()
            await first.tokens(await first.follow(await first.second_factor(code)))
        async with browser_of(app) as b:
            second = Browser(b, setup)
            await second.password()
            r = await second.second_factor(code)
            assert r.status_code == 401
        assert await _sessions(pg, setup.user_id) == 1
        assert await _codes(pg, setup.user_id) == 1

    async def test_five_wrong_codes_end_the_pending_sign_in(
            self, admin: AuthPIAdmin, account: AccountCredentials, setup: OidcSetup,
            http: httpx.AsyncClient, pg: asyncpg.Pool) -> None:
        _, secret, _ = await enrol_totp(admin, setup.issuer_id, setup.user_id)
        browser = Browser(http, setup)
        await browser.password()
        for _ in range(4):
            assert (await browser.second_factor("123456" if next_code(secret) != "123456" else "654321")
                    ).status_code == 401
        url = f"http://testserver/{setup.issuer_id}/login/second-factor"
        page = await http.get(url)
        from tests.hosted.helpers import csrf
        r = await http.post(url, data={"csrf": csrf(page.text), "code": "999999x"})
        assert r.status_code == 401
        assert "Sign in again" in r.text
        # The pending sign-in is gone: even the right code now needs the password first.
        r = await http.post(url, data={"csrf": csrf(page.text), "code": next_code(secret)})
        assert r.status_code == 400
        assert "expired" in r.text
        assert await _sessions(pg, setup.user_id) == 0
        expired = await _events(pg, account.account_id, "auth.flow.expired")
        assert expired[-1]["reason"] == "too_many_attempts"
        pending = "SELECT count(*) FROM pending_signins WHERE user_id = $1"
        assert await pg.fetchval(pending, setup.user_id) == 0

    async def test_progressive_delay_per_user_across_sign_ins(
            self, admin: AuthPIAdmin, account: AccountCredentials, setup: OidcSetup, app,
            pg: asyncpg.Pool) -> None:
        _, secret, _ = await enrol_totp(admin, setup.issuer_id, setup.user_id)
        wrong = "123456" if next_code(secret) != "123456" else "654321"
        for _ in range(2):  # two "attackers", each with their own pending sign-in
            async with browser_of(app) as c:
                b = Browser(c, setup)
                await b.password()
                for _ in range(3):
                    await b.second_factor(wrong)
        row = await pg.fetchrow("SELECT failures, next_allowed_at FROM second_factor_throttle "
                                "WHERE user_id = $1", setup.user_id)
        assert row["failures"] == 6
        async with browser_of(app) as c:
            b = Browser(c, setup)
            await b.password()
            # Even the right code waits: the delay is the user's, not the sign-in's.
            r = await b.second_factor(next_code(secret))
            assert r.status_code == 429
            assert int(r.headers["Retry-After"]) >= 1
        assert await _sessions(pg, setup.user_id) == 0
        assert await _events(pg, account.account_id, "auth.flow.rate-limited")


class TestBackupCodes:
    async def test_backup_code_works_once(
            self, admin: AuthPIAdmin, account: AccountCredentials, setup: OidcSetup, app,
            pg: asyncpg.Pool) -> None:
        verifier_id, _, codes = await enrol_totp(admin, setup.issuer_id, setup.user_id)
        async with browser_of(app) as a:
            first = Browser(a, setup)
            await first.password()
            body = await first.tokens(await first.follow(await first.second_factor(codes[0])))
            assert claims_of(body["id_token"])["amr"] == ["pwd", "otp", "mfa"]
        async with browser_of(app) as b:
            second = Browser(b, setup)
            await second.password()
            r = await second.second_factor(codes[0])
            assert r.status_code == 401
        assert await _sessions(pg, setup.user_id) == 1
        remaining = await admin.issuer(setup.issuer_id).user(setup.user_id).verifiers.get(verifier_id)
        assert remaining.model_dump()["backup_codes_remaining"] == 9
        assert await _events(pg, account.account_id, "user.mfa.verification.failed")

    async def test_regenerated_codes_replace_the_old_ones(
            self, admin: AuthPIAdmin, setup: OidcSetup, http: httpx.AsyncClient) -> None:
        verifier_id, _, old = await enrol_totp(admin, setup.issuer_id, setup.user_id)
        new = await admin.issuer(setup.issuer_id).user(setup.user_id).verifiers.regenerate(verifier_id)
        browser = Browser(http, setup)
        await browser.password()
        assert (await browser.second_factor(old[1])).status_code == 401
        final = await browser.follow(await browser.second_factor(list(new.model_dump()["codes"])[0]))
        await browser.tokens(final)


class TestWithoutSecondFactor:
    async def test_password_only_user_gets_one_factor_claims(
            self, setup: OidcSetup, http: httpx.AsyncClient) -> None:
        browser = Browser(http, setup)
        body = await browser.tokens(await browser.follow(await browser.password()))
        claims = claims_of(body["id_token"])
        assert claims["amr"] == ["pwd"]
        assert claims["acr"] == "urn:authpi:acr:1fa"


def _unused() -> None:  # keep pyotp imported for readers: codes come from pyotp
    pyotp.random_base32()
