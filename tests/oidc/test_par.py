"""PAR (RFC 9126): /par stores an authenticated client's validated authorization request and
answers a request_uri that /authorize takes once and only before it expires; a client may require
it (settings.openid.require_pushed_authorization_requests)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import asyncpg
import httpx
import pytest
from authpi_admin import AuthPIAdmin
from fastapi import FastAPI

from tests.oidc.helpers import (
    REDIRECT,
    OidcSetup,
    authorize_params,
    make_setup,
    pkce_pair,
    set_web_openid,
    sign_in,
)


@pytest.fixture
async def setup(admin: AuthPIAdmin) -> OidcSetup:
    return await make_setup(admin)


async def push(
    client: httpx.AsyncClient,
    s: OidcSetup,
    challenge: str,
    *,
    auth: tuple[str, str] | None = None,
    **extra: str,
) -> httpx.Response:
    params = authorize_params(s, challenge, **extra)
    params.pop("client_id")
    return await client.post(f"/{s.issuer_id}/par", data=params, auth=auth or (s.web_id, s.web_secret))


def authorize_url(s: OidcSetup, request_uri: str, client_id: str | None = None) -> str:
    return f"http://testserver/{s.issuer_id}/authorize?" + urlencode(
        {"client_id": client_id or s.web_id, "request_uri": request_uri}
    )


async def redeem(
    client: httpx.AsyncClient, s: OidcSetup, final: httpx.Response, verifier: str
) -> httpx.Response:
    assert final.status_code == 302, final.text
    query = parse_qs(urlsplit(final.headers["location"]).query)
    assert query["state"] == ["st-1"]
    return await client.post(
        f"/{s.issuer_id}/token",
        data={
            "grant_type": "authorization_code",
            "code": query["code"][0],
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
        auth=(s.web_id, s.web_secret),
    )


async def _rows(pg: asyncpg.Pool, client_id: str) -> list[asyncpg.Record]:
    return await pg.fetch("SELECT * FROM pushed_authorization_requests WHERE client_id = $1", client_id)


class TestPush:
    async def test_push_then_authorize_once(
        self, app: FastAPI, client: httpx.AsyncClient, setup: OidcSetup, pg: asyncpg.Pool
    ) -> None:
        verifier, challenge = pkce_pair()
        r = await push(client, setup, challenge)
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["request_uri"].startswith("urn:ietf:params:oauth:request_uri:")
        assert body["expires_in"] == app.state.settings.par_request_uri_ttl_seconds
        (row,) = await _rows(pg, setup.web_id)
        assert setup.web_secret not in str(dict(row))
        assert body["request_uri"] not in str(dict(row))
        final = await sign_in(client, authorize_url(setup, body["request_uri"]), setup.username)
        token = await redeem(client, setup, final, verifier)
        assert token.status_code == 200, token.text
        assert token.json()["id_token"]
        # Used once: a second presentation is an error page, and issues no code.
        again = await client.get(authorize_url(setup, body["request_uri"]))
        assert again.status_code == 400
        assert "expired or was already used" in again.text

    async def test_expired_request_uri(
        self, app: FastAPI, client: httpx.AsyncClient, setup: OidcSetup
    ) -> None:
        settings = app.state.settings
        ttl = settings.par_request_uri_ttl_seconds
        settings.par_request_uri_ttl_seconds = 0
        try:
            r = await push(client, setup, pkce_pair()[1])
        finally:
            settings.par_request_uri_ttl_seconds = ttl
        assert r.json()["expires_in"] == 0
        page = await client.get(authorize_url(setup, r.json()["request_uri"]))
        assert page.status_code == 400

    async def test_another_clients_request_uri(
        self, client: httpx.AsyncClient, setup: OidcSetup, pg: asyncpg.Pool
    ) -> None:
        r = await push(client, setup, pkce_pair()[1])
        page = await client.get(authorize_url(setup, r.json()["request_uri"], client_id=setup.public_id))
        assert page.status_code == 400
        # Not consumed by the refusal: its own client still can use it.
        assert (await _rows(pg, setup.web_id))[0]["used_at"] is None

    async def test_refusals_store_nothing(
        self, client: httpx.AsyncClient, setup: OidcSetup, pg: asyncpg.Pool
    ) -> None:
        challenge = pkce_pair()[1]
        bad_redirect = await push(client, setup, challenge, redirect_uri="https://evil.example/cb")
        assert (bad_redirect.status_code, bad_redirect.json()["error"]) == (400, "invalid_request")
        bad_scope = await push(client, setup, challenge, scope="openid admin:all")
        assert (bad_scope.status_code, bad_scope.json()["error"]) == (400, "invalid_scope")
        no_pkce = await push(client, setup, challenge, code_challenge=None)
        assert no_pkce.status_code == 400
        nested = await push(client, setup, challenge, request_uri="urn:ietf:params:oauth:request_uri:x")
        assert nested.status_code == 400
        wrong_secret = await push(client, setup, challenge, auth=(setup.web_id, "nope"))
        assert (wrong_secret.status_code, wrong_secret.json()["error"]) == (401, "invalid_client")
        assert await _rows(pg, setup.web_id) == []


class TestRequired:
    async def _require(self, admin: AuthPIAdmin, s: OidcSetup) -> None:
        await set_web_openid(admin, s, require_pushed_authorization_requests=True)

    async def test_plain_authorize_is_refused(
        self, client: httpx.AsyncClient, admin: AuthPIAdmin, setup: OidcSetup
    ) -> None:
        await self._require(admin, setup)
        _, challenge = pkce_pair()
        r = await client.get(f"/{setup.issuer_id}/authorize?" + urlencode(authorize_params(setup, challenge)))
        assert r.status_code == 302
        query = parse_qs(urlsplit(r.headers["location"]).query)
        assert query["error"] == ["invalid_request"]
        forged = authorize_params(setup, challenge, pushed="9999999999.deadbeef")
        r = await client.get(f"/{setup.issuer_id}/authorize?" + urlencode(forged))
        assert parse_qs(urlsplit(r.headers["location"]).query)["error"] == ["invalid_request"]

    async def test_pushed_request_goes_through_the_login(
        self, client: httpx.AsyncClient, admin: AuthPIAdmin, setup: OidcSetup
    ) -> None:
        await self._require(admin, setup)
        verifier, challenge = pkce_pair()
        r = await push(client, setup, challenge)
        final = await sign_in(client, authorize_url(setup, r.json()["request_uri"]), setup.username)
        assert (await redeem(client, setup, final, verifier)).status_code == 200


class TestDiscovery:
    async def test_endpoint_listed(self, client: httpx.AsyncClient, setup: OidcSetup) -> None:
        doc = (await client.get(f"/{setup.issuer_id}/.well-known/openid-configuration")).json()
        assert doc["pushed_authorization_request_endpoint"] == f"http://testserver/{setup.issuer_id}/par"
