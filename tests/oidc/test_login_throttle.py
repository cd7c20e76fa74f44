"""Hosted login behind a proxy: the X-Forwarded-For bypass (issue 8) and the throttle's rules.

The proxied app trusts the proxies in 10.200.0.0/16 (AUTHPI_TRUSTED_PROXIES); requests arrive from
10.200.0.1 carrying `X-Forwarded-For: <whatever the client wrote>, <what the proxy saw>`. Only the
proxy's view may count: a new forged first hop on every attempt must be throttled exactly as no
header at all, and must never reach the trail.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import asyncpg
import httpx
import pytest
from authpi_admin import AuthPIAdmin
from fastapi import FastAPI

from app.main import create_app
from tests.conftest import make_settings
from tests.oidc.helpers import OidcSetup, authorize_params, make_setup, pkce_pair, sign_in

LIMIT = 5
ADDRESS_LIMIT = 12
PROXY = "10.200.0.1"
_n = itertools.count(1)


def real_client() -> str:
    n = next(_n)
    return f"198.51.{(n >> 8) & 255}.{n & 255}"


def forged() -> str:
    n = next(_n)
    return f"203.0.{(n >> 8) & 255}.{n & 255}"


async def _app(database_url: str, **settings: object) -> AsyncIterator[FastAPI]:
    application = create_app(make_settings(auth_fail_limit=LIMIT, auth_fail_address_limit=ADDRESS_LIMIT,
                                           **settings), database_url=database_url)
    async with application.router.lifespan_context(application):
        application.state.oidc.throttle.max_delay = 0.01  # the progressive delay, short for tests
        yield application


@pytest.fixture
async def proxied(database_url: str) -> AsyncIterator[FastAPI]:
    async for application in _app(database_url, trusted_proxies="10.200.0.0/16"):
        yield application


@pytest.fixture
async def setup(admin: AuthPIAdmin) -> OidcSetup:
    return await make_setup(admin)


def through_proxy(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(PROXY, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def attempt(app: FastAPI, setup: OidcSetup, username: str, password: str, *,
                  xff: str | None) -> httpx.Response:
    async with through_proxy(app) as http:
        if xff is not None:
            http.headers["X-Forwarded-For"] = xff
        _, challenge = pkce_pair()
        url = f"/{setup.issuer_id}/authorize?" + urlencode(authorize_params(setup, challenge))
        return await sign_in(http, url, username, password)


class TestForgedForwardedFor:
    async def test_one_username_is_throttled_as_without_the_header(self, proxied: FastAPI,
                                                                   setup: OidcSetup):
        client = real_client()
        for _ in range(LIMIT):
            r = await attempt(proxied, setup, setup.username, "wrong", xff=f"{forged()}, {client}")
            assert r.status_code == 401
        r = await attempt(proxied, setup, setup.username, "wrong", xff=f"{forged()}, {client}")
        assert r.status_code == 429
        assert int(r.headers["retry-after"]) >= 1
        # The right password from that same client waits too; from another address it works.
        assert (await attempt(proxied, setup, setup.username, "correct horse battery staple 42",
                              xff=f"{forged()}, {client}")).status_code == 429
        ok = await attempt(proxied, setup, setup.username, "correct horse battery staple 42",
                           xff=f"{forged()}, {real_client()}")
        assert ok.status_code == 302, ok.text

    async def test_a_spray_over_many_usernames_is_throttled_per_address(self, proxied: FastAPI,
                                                                        setup: OidcSetup):
        client = real_client()
        for i in range(ADDRESS_LIMIT):
            r = await attempt(proxied, setup, f"victim{i}@globex.example", "wrong",
                              xff=f"{forged()}, {client}")
            assert r.status_code == 401
        r = await attempt(proxied, setup, "victim-next@globex.example", "wrong",
                          xff=f"{forged()}, {client}")
        assert r.status_code == 429
        # Without the header at all the same spray is throttled after the same count.
        async for bare in _app(proxied.state.database_url):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=bare, client=(client, 1)),
                                         base_url="http://testserver") as http:
                _, challenge = pkce_pair()
                url = f"/{setup.issuer_id}/authorize?" + urlencode(authorize_params(setup, challenge))
                assert (await sign_in(http, url, "victim-bare@globex.example", "w")).status_code == 429

    async def test_the_trail_records_the_proxys_view(self, proxied: FastAPI, setup: OidcSetup,
                                                     admin: AuthPIAdmin, pg: asyncpg.Pool):
        client = real_client()
        fakes = [forged() for _ in range(3)]
        for fake in fakes:
            await attempt(proxied, setup, setup.username, "wrong", xff=f"{fake}, {client}")
        ok = await attempt(proxied, setup, setup.username, "correct horse battery staple 42",
                           xff=f"{forged()}, {client}")
        assert ok.status_code == 302
        failed = (await admin.events.list(event_types="user.verification.failed")).data
        succeeded = (await admin.events.list(event_types="user.verification.succeeded")).data
        assert len(failed) == 3
        assert len(succeeded) == 1
        assert {e.data["ip"] for e in failed + succeeded} == {client}
        rows = await pg.fetch("SELECT data::text, auth::text FROM events WHERE issuer_id = $1",
                              setup.issuer_id)
        assert not any(fake in r["data"] or fake in (r["auth"] or "") for r in rows for fake in fakes)
        session = await pg.fetchval("SELECT origin FROM login_sessions WHERE user_id = $1", setup.user_id)
        assert session in (None, client)

    async def test_trust_proxy_headers_means_the_immediate_peer_only(self, database_url: str,
                                                                     setup: OidcSetup,
                                                                     admin: AuthPIAdmin):
        client = real_client()
        async for application in _app(database_url, trust_proxy_headers=True):
            for _ in range(LIMIT):
                await attempt(application, setup, setup.username, "wrong", xff=f"{forged()}, {client}")
            r = await attempt(application, setup, setup.username, "wrong", xff=f"{forged()}, {client}")
            assert r.status_code == 429
        failed = (await admin.events.list(event_types="user.verification.failed")).data
        assert {e.data["ip"] for e in failed} == {client}

    async def test_an_untrusted_peer_cannot_speak_for_anyone(self, database_url: str, setup: OidcSetup,
                                                             admin: AuthPIAdmin):
        async for application in _app(database_url, trusted_proxies="10.200.0.0/16"):
            peer = real_client()  # not a proxy: its X-Forwarded-For is ignored
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application, client=(peer, 1)),
                                         base_url="http://testserver") as http:
                http.headers["X-Forwarded-For"] = forged()
                _, challenge = pkce_pair()
                url = f"/{setup.issuer_id}/authorize?" + urlencode(authorize_params(setup, challenge))
                assert (await sign_in(http, url, setup.username, "wrong")).status_code == 401
        failed = (await admin.events.list(event_types="user.verification.failed")).data
        assert [e.data["ip"] for e in failed] == [peer]


class TestNoLockout:
    async def test_a_username_flood_from_other_addresses_never_locks_the_holder_out(
            self, proxied: FastAPI, setup: OidcSetup):
        for _ in range(3 * LIMIT):
            r = await attempt(proxied, setup, setup.username, "wrong", xff=real_client())
            assert r.status_code == 401
        ok = await attempt(proxied, setup, setup.username, "correct horse battery staple 42",
                           xff=real_client())
        assert ok.status_code == 302, ok.text
