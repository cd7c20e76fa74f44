"""The database goes away mid-run (a TCP proxy in front of it is cut), then comes back.

While it is unreachable: a warm API key keeps answering `GET /v1/me` from the cache for at most
`outage_grace_seconds` after the last successful contact, its `api-key.verified` events wait in the
batcher (bounded) and are written when the database returns; a key never verified here is not let
in; discovery and JWKS are served from the cache.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from authpi_admin import AuthPIAdmin
from fastapi import FastAPI

from app.main import create_app
from tests.conftest import make_settings, new_account
from tests.fixtures.tcp_proxy import CuttableProxy

KEY = {"name": "k", "restrictions": {"scopes": ["*:**"]}}


@pytest.fixture
async def proxy(database_url: str) -> AsyncIterator[CuttableProxy]:
    p = CuttableProxy(database_url)
    p.url = await p.start()  # type: ignore[attr-defined]
    yield p
    await p.stop()


@pytest.fixture
async def cut_app(proxy: CuttableProxy) -> AsyncIterator[FastAPI]:
    application = create_app(make_settings(), database_url=proxy.url)  # type: ignore[attr-defined]
    async with application.router.lifespan_context(application):
        yield application


async def wait_for(predicate, seconds: float = 10.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


def http(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("10.77.0.1", 1), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport,
                             base_url="http://testserver")


async def verified_events(pg: asyncpg.Pool, key_id: str) -> int:
    return await pg.fetchval("SELECT count(*) FROM events WHERE type = 'api-key.verified' "
                             "AND subject->>'id' = $1", key_id)


class TestDatabaseOutage:
    async def test_warm_me_discovery_and_jwks_ride_out_the_outage(
            self, cut_app: FastAPI, proxy: CuttableProxy, pg: asyncpg.Pool):
        app = cut_app
        account = await new_account(app)
        async with http(app) as c:
            admin = AuthPIAdmin(api_key=account.basic, base_url="http://testserver", http_client=c)
            issuer = await admin.issuers.create({"name": "outage"})
            key = await admin.api_keys.create(KEY)
            other = await admin.api_keys.create({**KEY, "name": "never-used"})
            assert (await c.get("/v1/me", auth=(key.id, key.secret_plain))).status_code == 200
            discovery = await c.get(f"/{issuer.id}/.well-known/openid-configuration")
            jwks = await c.get(f"/{issuer.id}/jwks.json")
            assert discovery.status_code == jwks.status_code == 200
            await app.state.event_batcher.flush()
            before = await verified_events(pg, key.id)

            verifier = app.state.key_verifier
            proxy.cut()
            await wait_for(lambda: not verifier.live())
            served = 0
            for _ in range(5):
                r = await c.get("/v1/me", auth=(key.id, key.secret_plain))
                assert r.status_code == 200, r.text
                assert r.json()["data"]["key_id"] == key.id
                served += 1
            assert verifier.stats["outage"] >= 5
            # A wrong secret, or a key this process never verified, is not let in.
            assert (await c.get("/v1/me", auth=(key.id, "sk_wrong"))).status_code >= 500
            assert (await c.get("/v1/me", auth=(other.id, other.secret_plain))).status_code >= 500
            # Public metadata from the cache.
            assert (await c.get(f"/{issuer.id}/.well-known/openid-configuration")).json() == \
                discovery.json()
            assert (await c.get(f"/{issuer.id}/jwks.json")).json() == jwks.json()
            assert app.state.event_batcher.pending >= served  # waiting for the database

            # Past the grace after the last contact, the cache no longer answers alone.
            verifier.outage_grace = 0.2
            await asyncio.sleep(0.3)
            assert (await c.get("/v1/me", auth=(key.id, key.secret_plain))).status_code >= 500
            verifier.outage_grace = app.state.settings.outage_grace_seconds

            proxy.restore()
            await wait_for(verifier.live, 15)
            assert (await c.get("/v1/me", auth=(key.id, key.secret_plain))).status_code == 200
            await app.state.event_batcher.flush()
            assert await verified_events(pg, key.id) == before + served + 1

    async def test_a_revocation_made_after_the_database_returns_holds(
            self, cut_app: FastAPI, proxy: CuttableProxy):
        app = cut_app
        account = await new_account(app)
        async with http(app) as c:
            admin = AuthPIAdmin(api_key=account.basic, base_url="http://testserver", http_client=c)
            key = await admin.api_keys.create(KEY)
            assert (await c.get("/v1/me", auth=(key.id, key.secret_plain))).status_code == 200
            verifier = app.state.key_verifier
            proxy.cut()
            await wait_for(lambda: not verifier.live())
            assert (await c.get("/v1/me", auth=(key.id, key.secret_plain))).status_code == 200
            proxy.restore()
            await wait_for(verifier.live, 15)
            await admin.api_keys.revoke(key.id)
            assert (await c.get("/v1/me", auth=(key.id, key.secret_plain))).status_code == 401
