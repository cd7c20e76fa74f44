"""A database outage answers 503 with Retry-After and `retryable: true`, quickly, on every
database-backed route, and the server recovers without a restart (issue 9, item 2).

The database is cut for real: the app talks to PostgreSQL through a TCP proxy the test closes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
from authpi_admin import AuthPIAdmin
from authpi_admin.generated.models import ApiError as ApiErrorBody
from fastapi import FastAPI

from app.main import create_app
from tests.conftest import AccountCredentials, make_settings, new_account
from tests.fixtures.proxy import DatabaseProxy

# A request must be answered well within this, connect timeout (3 s) included, or httpx fails it.
ANSWER_WITHIN = 10.0


@pytest.fixture
def proxy(database_url: str) -> Iterator[DatabaseProxy]:
    p = DatabaseProxy(database_url).start()
    yield p
    p.stop()


@dataclass
class World:
    app: FastAPI
    http: httpx.AsyncClient
    warm: AccountCredentials
    cold: AccountCredentials
    issuer_discovery: str
    issuer_jwks: str
    issuer_token: str


@pytest.fixture
async def world(proxy: DatabaseProxy) -> AsyncIterator[World]:
    app = create_app(make_settings(db_connect_timeout_seconds=2.0), database_url=proxy.url)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver",
                                     timeout=ANSWER_WITHIN) as http:
            warm = await new_account(app, "outage-warm")
            cold = await new_account(app, "outage-cold")
            sdk = AuthPIAdmin(api_key=warm.basic, base_url="http://testserver", http_client=http)
            issuers = [(await sdk.issuers.create({"name": f"outage-{n}"})).id for n in range(3)]
            yield World(app, http, warm, cold, *issuers)


async def _outage_answers(w: World) -> dict[str, httpx.Response]:
    a = w.warm.account_id
    return {
        "read": await w.http.get(f"/v1/accounts/{a}/issuers", auth=w.warm.basic),
        "write": await w.http.post(f"/v1/accounts/{a}/issuers", auth=w.warm.basic,
                                   json={"name": "made-during-outage"}),
        "me-cold": await w.http.get("/v1/me", auth=w.cold.basic),
        "token": await w.http.post(f"/{w.issuer_token}/token",
                                   data={"grant_type": "client_credentials", "client_id": "c_x",
                                         "client_secret": "nope"}),
        "discovery": await w.http.get(f"/{w.issuer_discovery}/.well-known/openid-configuration"),
        "jwks": await w.http.get(f"/{w.issuer_jwks}/jwks.json"),
    }


def _assert_unavailable(name: str, r: httpx.Response) -> None:
    assert r.status_code == 503, (name, r.status_code, r.text)
    assert int(r.headers["Retry-After"]) >= 1, name
    body = r.json()
    if name in ("token", "discovery", "jwks"):
        # The OAuth endpoints answer in RFC 6749's shape.
        assert body["error"] == "temporarily_unavailable", (name, body)
    else:
        err = ApiErrorBody.model_validate(body)
        assert err.retryable is True, (name, body)
        assert err.error == "service_unavailable"
        assert body["retry_after"] >= 1


async def _wait_ready(http: httpx.AsyncClient) -> float:
    start = time.monotonic()
    while time.monotonic() - start < 30:
        if (await http.get("/readyz")).status_code == 200:
            return time.monotonic() - start
        await asyncio.sleep(0.05)
    raise AssertionError("not ready 30 s after the database came back")


class TestDatabaseOutage:
    async def test_every_route_answers_503_then_recovers(self, world: World, proxy: DatabaseProxy,
                                                         pg: object) -> None:
        w = world
        before = await w.http.get(f"/v1/accounts/{w.warm.account_id}/issuers", auth=w.warm.basic)
        assert before.status_code == 200
        count_before = len(before.json()["data"])

        proxy.refuse()
        answers = await _outage_answers(w)
        for name, r in answers.items():
            _assert_unavailable(name, r)
        # The next request still gets an answer (nothing hangs or stays broken).
        assert (await w.http.get("/readyz")).status_code == 503

        proxy.restore()
        await _wait_ready(w.http)
        a = w.warm.account_id
        after = await w.http.get(f"/v1/accounts/{a}/issuers", auth=w.warm.basic)
        assert after.status_code == 200, after.text
        # The write refused during the outage changed nothing.
        assert len(after.json()["data"]) == count_before
        assert (await w.http.post(f"/v1/accounts/{a}/issuers", auth=w.warm.basic,
                                  json={"name": "made-after"})).status_code == 201
        assert (await w.http.get("/v1/me", auth=w.cold.basic)).status_code == 200
        assert (await w.http.get(f"/{w.issuer_discovery}/.well-known/openid-configuration")
                ).status_code == 200
        assert (await w.http.get(f"/{w.issuer_jwks}/jwks.json")).status_code == 200
        token = await w.http.post(f"/{w.issuer_token}/token",
                                  data={"grant_type": "client_credentials", "client_id": "c_x",
                                        "client_secret": "nope"})
        assert token.status_code == 401, token.text  # an unknown client again, not an outage

    async def test_an_unanswering_database_is_503_within_the_connect_timeout(
            self, world: World, proxy: DatabaseProxy) -> None:
        w = world
        proxy.blackhole()
        start = time.monotonic()
        r = await w.http.get(f"/v1/accounts/{w.warm.account_id}/issuers", auth=w.warm.basic)
        _assert_unavailable("read", r)
        r = await w.http.get("/v1/me", auth=w.cold.basic)
        _assert_unavailable("me-cold", r)
        assert time.monotonic() - start < ANSWER_WITHIN
        proxy.restore()
        await _wait_ready(w.http)
        assert (await w.http.get("/v1/me", auth=w.cold.basic)).status_code == 200
