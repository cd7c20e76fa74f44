"""Trust this device: a device cookie (HttpOnly, per issuer path) whose secret is stored only as a
hash skips the second factor until the device is deleted through the admin API."""

from __future__ import annotations

import asyncpg
import httpx
from authpi_admin import AuthPIAdmin

from tests.hosted.helpers import Browser, claims_of, enrol_totp, next_code
from tests.oidc.helpers import OidcSetup


def _device_cookie(http: httpx.AsyncClient, issuer_id: str) -> str | None:
    for cookie in http.cookies.jar:
        if cookie.name == f"authpi_device_{issuer_id}":
            return cookie.value
    return None


class TestTrustedDevice:
    async def test_trust_skip_delete_and_asked_again(
            self, admin: AuthPIAdmin, setup: OidcSetup, http: httpx.AsyncClient, pg: asyncpg.Pool) -> None:
        _, secret, _ = await enrol_totp(admin, setup.issuer_id, setup.user_id)
        browser = Browser(http, setup)
        await browser.password()
        r = await browser.second_factor(next_code(secret), trust=True)
        set_cookies = r.headers.get_list("set-cookie")
        device_header = next(c for c in set_cookies if c.startswith(f"authpi_device_{setup.issuer_id}="))
        assert "HttpOnly" in device_header
        assert f"Path=/{setup.issuer_id}" in device_header
        await browser.tokens(await browser.follow(r))
        value = _device_cookie(http, setup.issuer_id)
        device_id, _, device_secret = value.partition(".")
        # Stored only as a hash.
        row = await pg.fetchrow("SELECT * FROM user_trusted_devices WHERE id = $1", device_id)
        assert device_secret not in str(dict(row))
        devices = admin.issuer(setup.issuer_id).user(setup.user_id).trusted_devices
        listed = (await devices.list()).data
        assert [d.id for d in listed] == [device_id]
        # The next sign-in on this browser needs no code.
        again = await browser.password(prompt="login")
        assert "/authorize?" in again.headers["location"]
        body = await browser.tokens(await browser.follow(again))
        assert claims_of(body["id_token"])["amr"] == ["pwd"]
        # Deleted through the API: asked again.
        await devices.delete(device_id)
        third = await browser.password(prompt="login")
        assert third.headers["location"].endswith("/login/second-factor")

    async def test_an_api_created_device_never_matches_a_cookie(
            self, admin: AuthPIAdmin, setup: OidcSetup, http: httpx.AsyncClient) -> None:
        await enrol_totp(admin, setup.issuer_id, setup.user_id)
        devices = admin.issuer(setup.issuer_id).user(setup.user_id).trusted_devices
        created = await devices.create({"fingerprint": "laptop-1", "name": "Laptop"})
        device_id = created.model_dump().get("id") or (await devices.list()).data[0].id
        http.cookies.set(f"authpi_device_{setup.issuer_id}", f"{device_id}.laptop-1",
                         domain="testserver", path=f"/{setup.issuer_id}")
        r = await Browser(http, setup).password()
        assert r.headers["location"].endswith("/login/second-factor")

    async def test_another_users_device_cookie_does_not_match(
            self, admin: AuthPIAdmin, setup: OidcSetup, http: httpx.AsyncClient, app) -> None:
        _, secret, _ = await enrol_totp(admin, setup.issuer_id, setup.user_id)
        browser = Browser(http, setup)
        await browser.password()
        await browser.follow(await browser.second_factor(next_code(secret), trust=True))
        value = _device_cookie(http, setup.issuer_id)
        # The same cookie presented for another user of the issuer is not trusted.
        other = await admin.issuer(setup.issuer_id).users.create({
            "username_type": "email", "username": "bob@globex.example", "password": "another pass phrase 77"})
        await enrol_totp(admin, setup.issuer_id, other.id)
        from dataclasses import replace

        from tests.hosted.helpers import browser_of
        async with browser_of(app) as c:
            c.cookies.set(f"authpi_device_{setup.issuer_id}", value, domain="testserver",
                          path=f"/{setup.issuer_id}")
            r = await Browser(c, replace(setup, username="bob@globex.example")).password(
                password="another pass phrase 77")
            assert r.headers["location"].endswith("/login/second-factor")
