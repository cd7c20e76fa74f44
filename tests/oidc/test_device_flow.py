"""Device authorization grant (RFC 8628): the device polls `/token` while the user enters the code
on the hosted page, signs in through the hosted login and approves or denies."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urljoin

import asyncpg
import httpx
import pytest
from authpi_admin import AuthPIAdmin
from fastapi import FastAPI
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.oidc.helpers import PASSWORD, OidcSetup, form_fields, make_setup
from tests.oidc.test_dpop import new_key, proof

DEVICE = "urn:ietf:params:oauth:grant-type:device_code"
ORIGIN = {"Origin": "http://testserver"}
CODE = re.compile(r"^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$")


@dataclass
class DeviceSetup:
    s: OidcSetup
    tv_id: str


@pytest.fixture
async def d(admin: AuthPIAdmin) -> DeviceSetup:
    s = await make_setup(admin)
    tv = await admin.issuer(s.issuer_id).clients.create({
        "name": "Living-room TV", "confidential": False,
        "settings": {"scopes": ["openid", "profile", "offline_access"], "openid": {
            "application_type": "native", "grant_types": [DEVICE, "refresh_token"]}}})
    return DeviceSetup(s, tv.id)


@pytest.fixture
def short_ttl(app: FastAPI) -> Iterator[None]:
    settings = app.state.settings
    before = settings.device_code_ttl_seconds
    settings.device_code_ttl_seconds = 0  # expired as soon as it is issued
    yield
    settings.device_code_ttl_seconds = before


async def start(http: httpx.AsyncClient, d: DeviceSetup, **extra: str) -> httpx.Response:
    return await http.post(f"/{d.s.issuer_id}/device_authorization",
                           data={"client_id": d.tv_id, "scope": "openid profile offline_access", **extra})


async def poll(http: httpx.AsyncClient, d: DeviceSetup, device_code: str) -> httpx.Response:
    return await http.post(f"/{d.s.issuer_id}/token", data={
        "grant_type": DEVICE, "device_code": device_code, "client_id": d.tv_id})


async def open_approval(browser: httpx.AsyncClient, d: DeviceSetup, uri: str) -> httpx.Response:
    """Open the verification URI in a browser with no session: sign in, land on the approval form."""
    r = await browser.get(uri)
    assert r.status_code == 303, r.text
    assert "/login?" in r.headers["location"]
    login_url = urljoin(str(r.url), r.headers["location"])
    page = await browser.get(login_url)
    assert page.status_code == 200
    r = await browser.post(login_url.split("?")[0], headers=ORIGIN, data={
        **form_fields(page.text), "username": d.s.username, "password": PASSWORD})
    assert r.status_code == 303, r.text
    assert r.headers["location"].startswith(f"/{d.s.issuer_id}/device?user_code=")
    page = await browser.get(urljoin(str(r.url), r.headers["location"]))
    assert page.status_code == 200, page.text
    assert "Living-room TV" in page.text
    return page


def csrf(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]*)"', html)
    assert m
    return m.group(1)


async def decide(browser: httpx.AsyncClient, d: DeviceSetup, page: httpx.Response, user_code: str,
                 action: str) -> httpx.Response:
    return await browser.post(f"/{d.s.issuer_id}/device", headers=ORIGIN, data={
        "csrf": csrf(page.text), "user_code": user_code, "action": action})


def browser_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


class TestDeviceFlow:
    async def test_approve(self, client: httpx.AsyncClient, d: DeviceSetup, app: FastAPI,
                           pg: asyncpg.Pool) -> None:
        r = await start(client, d)
        assert r.status_code == 200, r.text
        body = r.json()
        assert CODE.match(body["user_code"])
        assert body["verification_uri"] == f"http://testserver/{d.s.issuer_id}/device"
        complete = f"{body['verification_uri']}?user_code={body['user_code']}"
        assert body["verification_uri_complete"] == complete
        assert (body["expires_in"], body["interval"]) == (600, 5)
        stored = await pg.fetchrow("SELECT device_code_hash, user_code_hash FROM device_authorizations "
                                   "WHERE client_id = $1", d.tv_id)
        assert body["device_code"] not in stored["device_code_hash"]
        # Polling before the user decides; polling too fast slows the device down.
        first = await poll(client, d, body["device_code"])
        assert (first.status_code, first.json()["error"]) == (400, "authorization_pending")
        fast = await poll(client, d, body["device_code"])
        assert (fast.status_code, fast.json()["error"]) == (400, "slow_down")
        assert await pg.fetchval("SELECT interval FROM device_authorizations WHERE client_id = $1",
                                 d.tv_id) == 10
        async with browser_for(app) as browser:
            page = await open_approval(browser, d, body["verification_uri_complete"])
            done = await decide(browser, d, page, body["user_code"], "approve")
            assert done.status_code == 200
            assert "connected" in done.text
        tokens = await poll(client, d, body["device_code"])
        assert tokens.status_code == 200, tokens.text
        t = tokens.json()
        assert {"access_token", "id_token", "refresh_token"} <= set(t)
        assert t["scope"] == "openid profile offline_access"
        keys = KeySet.import_key_set((await client.get(f"/{d.s.issuer_id}/jwks.json")).json())
        claims = jwt.decode(t["access_token"], keys, algorithms=["ES256"]).claims
        assert claims["sub"] == d.s.user_id
        assert claims["client_id"] == d.tv_id
        assert claims["amr"] == ["pwd"]
        # The refresh token works like any other.
        refreshed = await client.post(f"/{d.s.issuer_id}/token", data={
            "grant_type": "refresh_token", "refresh_token": t["refresh_token"], "client_id": d.tv_id})
        assert refreshed.status_code == 200, refreshed.text
        # The device code is single use.
        again = await poll(client, d, body["device_code"])
        assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")
        assert await pg.fetchval("SELECT count(*) FROM oidc_grants WHERE client_id = $1", d.tv_id) == 1
        events = await pg.fetch("SELECT type, user_id FROM events WHERE client_id = $1 "
                                "AND type LIKE 'auth.device%'", d.tv_id)
        assert [(e["type"], e["user_id"]) for e in events] == [("auth.device.approved", d.s.user_id)]

    async def test_code_entered_by_hand(self, client: httpx.AsyncClient, d: DeviceSetup,
                                        app: FastAPI) -> None:
        body = (await start(client, d)).json()
        async with browser_for(app) as browser:
            await open_approval(browser, d, body["verification_uri_complete"])
            form = await browser.get(f"/{d.s.issuer_id}/device")
            assert form.status_code == 200
            assert 'name="user_code"' in form.text
            # Lower case, without the dash: the same code.
            typed = body["user_code"].replace("-", "").lower()
            page = await browser.get(f"/{d.s.issuer_id}/device", params={"user_code": typed})
            assert page.status_code == 200
            assert body["user_code"] in page.text
            assert (await decide(browser, d, page, typed, "approve")).status_code == 200
        assert (await poll(client, d, body["device_code"])).status_code == 200

    async def test_deny(self, client: httpx.AsyncClient, d: DeviceSetup, app: FastAPI,
                        pg: asyncpg.Pool) -> None:
        body = (await start(client, d)).json()
        async with browser_for(app) as browser:
            page = await open_approval(browser, d, body["verification_uri_complete"])
            done = await decide(browser, d, page, body["user_code"], "deny")
            assert done.status_code == 200
            # The code is spent: approving afterwards is refused.
            late = await decide(browser, d, page, body["user_code"], "approve")
            assert late.status_code == 400
        for _ in range(2):
            r = await poll(client, d, body["device_code"])
            assert (r.status_code, r.json()["error"]) == (400, "access_denied")
        assert await pg.fetchval("SELECT count(*) FROM oidc_grants WHERE client_id = $1", d.tv_id) == 0

    async def test_expired(self, client: httpx.AsyncClient, d: DeviceSetup, app: FastAPI, pg: asyncpg.Pool,
                           short_ttl: None) -> None:
        body = (await start(client, d)).json()
        assert body["expires_in"] == 0
        r = await poll(client, d, body["device_code"])
        assert (r.status_code, r.json()["error"]) == (400, "expired_token")
        async with browser_for(app) as browser:
            r = await browser.get(body["verification_uri_complete"])
            login_url = urljoin(str(r.url), r.headers["location"])
            page = await browser.get(login_url)
            r = await browser.post(login_url.split("?")[0], headers=ORIGIN, data={
                **form_fields(page.text), "username": d.s.username, "password": PASSWORD})
            page = await browser.get(urljoin(str(r.url), r.headers["location"]))
            assert page.status_code == 400
            assert "unknown, used or expired" in page.text
        assert await pg.fetchval("SELECT status FROM device_authorizations WHERE client_id = $1",
                                 d.tv_id) == "pending"
        assert await pg.fetchval("SELECT count(*) FROM oidc_grants WHERE client_id = $1", d.tv_id) == 0


class TestDpop:
    async def test_a_client_requiring_dpop_gets_bound_tokens_only(
            self, client: httpx.AsyncClient, d: DeviceSetup, admin: AuthPIAdmin, app: FastAPI,
            pg: asyncpg.Pool) -> None:
        await admin.issuer(d.s.issuer_id).clients.update(d.tv_id, {"settings": {
            "scopes": ["openid", "profile", "offline_access"], "openid": {
                "application_type": "native", "grant_types": [DEVICE, "refresh_token"],
                "dpop_bound_access_tokens": True}}})
        body = (await start(client, d)).json()
        async with browser_for(app) as browser:
            page = await open_approval(browser, d, body["verification_uri_complete"])
            assert (await decide(browser, d, page, body["user_code"], "approve")).status_code == 200
        # Without a proof: refused, and the approved device code is not spent.
        bare = await poll(client, d, body["device_code"])
        assert (bare.status_code, bare.json()["error"]) == (400, "invalid_dpop_proof")
        assert await pg.fetchval("SELECT count(*) FROM oidc_grants WHERE client_id = $1", d.tv_id) == 0
        key = new_key()
        url = f"http://testserver/{d.s.issuer_id}/token"
        bound = await client.post(url, data={"grant_type": DEVICE, "device_code": body["device_code"],
                                             "client_id": d.tv_id},
                                  headers={"DPoP": proof(key, "POST", url)})
        assert bound.status_code == 200, bound.text
        assert bound.json()["token_type"] == "DPoP"
        keys = KeySet.import_key_set((await client.get(f"/{d.s.issuer_id}/jwks.json")).json())
        claims = jwt.decode(bound.json()["access_token"], keys, algorithms=["ES256"]).claims
        assert claims["cnf"]["jkt"] == key.thumbprint()
        # A public client's refresh token is bound to that key too.
        assert await pg.fetchval("SELECT dpop_jkt FROM oidc_grants WHERE client_id = $1",
                                 d.tv_id) == key.thumbprint()


class TestRefusals:
    async def test_client_without_the_grant(self, client: httpx.AsyncClient, d: DeviceSetup,
                                            pg: asyncpg.Pool) -> None:
        r = await client.post(f"/{d.s.issuer_id}/device_authorization",
                              data={"client_id": d.s.web_id, "client_secret": d.s.web_secret})
        assert (r.status_code, r.json()["error"]) == (400, "unauthorized_client")
        r = await start(client, d, scope="openid invoices:read")
        assert (r.status_code, r.json()["error"]) == (400, "invalid_scope")
        r = await client.post(f"/{d.s.issuer_id}/device_authorization", data={"client_id": "c_nope"})
        assert r.status_code == 401
        assert await pg.fetchval("SELECT count(*) FROM device_authorizations WHERE issuer_id = $1",
                                 d.s.issuer_id) == 0

    async def test_unknown_device_code_and_other_client(self, client: httpx.AsyncClient, d: DeviceSetup,
                                                        admin: AuthPIAdmin) -> None:
        r = await poll(client, d, "dc_unknown")
        assert (r.status_code, r.json()["error"]) == (400, "invalid_grant")
        body = (await start(client, d)).json()
        other = await admin.issuer(d.s.issuer_id).clients.create({
            "name": "other-tv", "confidential": False,
            "settings": {"scopes": ["openid"], "openid": {"application_type": "native",
                                                         "grant_types": [DEVICE]}}})
        r = await client.post(f"/{d.s.issuer_id}/token", data={
            "grant_type": DEVICE, "device_code": body["device_code"], "client_id": other.id})
        assert (r.status_code, r.json()["error"]) == (400, "invalid_grant")

    async def test_user_code_of_another_issuer(self, client: httpx.AsyncClient, d: DeviceSetup,
                                               admin: AuthPIAdmin, app: FastAPI) -> None:
        other = DeviceSetup(await make_setup(admin), "")
        other.tv_id = (await admin.issuer(other.s.issuer_id).clients.create({
            "name": "Living-room TV", "confidential": False,
            "settings": {"scopes": ["openid"], "openid": {"application_type": "native",
                                                         "grant_types": [DEVICE]}}})).id
        body = (await start(client, d)).json()
        foreign = (await start(client, other, scope="openid")).json()
        async with browser_for(app) as browser:
            await open_approval(browser, d, body["verification_uri_complete"])
            r = await browser.get(f"/{d.s.issuer_id}/device", params={"user_code": foreign["user_code"]})
            assert r.status_code == 400

    async def test_form_needs_csrf_and_origin(self, client: httpx.AsyncClient, d: DeviceSetup, app: FastAPI,
                                              pg: asyncpg.Pool) -> None:
        body = (await start(client, d)).json()
        async with browser_for(app) as browser:
            page = await open_approval(browser, d, body["verification_uri_complete"])
            r = await browser.post(f"/{d.s.issuer_id}/device", headers={"Origin": "https://evil.example"},
                                   data={"csrf": csrf(page.text), "user_code": body["user_code"],
                                         "action": "approve"})
            assert r.status_code == 403
            r = await browser.post(f"/{d.s.issuer_id}/device", headers=ORIGIN,
                                   data={"csrf": "forged", "user_code": body["user_code"],
                                         "action": "approve"})
            assert r.status_code == 403
        assert await pg.fetchval("SELECT status FROM device_authorizations WHERE client_id = $1",
                                 d.tv_id) == "pending"

    async def test_policy_applies(self, client: httpx.AsyncClient, d: DeviceSetup, app: FastAPI,
                                  admin: AuthPIAdmin) -> None:
        """A session that no longer meets the issuer's policy is sent back to sign in."""
        body = (await start(client, d)).json()
        async with browser_for(app) as browser:
            page = await open_approval(browser, d, body["verification_uri_complete"])
            await admin.issuers.update(d.s.issuer_id, {"settings": {
                "access": {"mode": "public"}, "security": {"mfa_required": True}}})
            r = await browser.get(body["verification_uri_complete"])
            assert r.status_code == 303
            assert "/login?" in r.headers["location"]
            r = await decide(browser, d, page, body["user_code"], "approve")
            assert r.status_code == 303
        r = await poll(client, d, body["device_code"])
        assert r.json()["error"] == "authorization_pending"

    async def test_discovery(self, client: httpx.AsyncClient, d: DeviceSetup) -> None:
        doc = (await client.get(f"/{d.s.issuer_id}/.well-known/openid-configuration")).json()
        endpoint = f"http://testserver/{d.s.issuer_id}/device_authorization"
        assert doc["device_authorization_endpoint"] == endpoint
        assert DEVICE in doc["grant_types_supported"]
