"""Smaller findings of issue 9: 405 carries Allow, a login POST must prove its origin, and an
oversize authorization request is refused instead of being carried into the login redirect."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import asyncpg
import httpx
import pytest
from authpi_admin import AuthPIAdmin
from authpi_admin.generated.models import ApiError as ApiErrorBody

from tests.conftest import AccountCredentials, count_rows
from tests.oidc.helpers import OidcSetup, authorize_params, form_fields, make_setup, pkce_pair

BASE = "http://testserver"


@pytest.fixture
async def setup(admin: AuthPIAdmin) -> OidcSetup:
    return await make_setup(admin)


class TestMethodNotAllowed:
    @pytest.mark.parametrize(("method", "path", "expected"), [
        ("DELETE", "/v1/accounts/{A}/issuers", {"GET", "POST"}),
        ("PUT", "/v1/accounts/{A}", {"GET", "PATCH"}),
        ("POST", "/v1/me", {"GET"}),
    ])
    async def test_405_names_every_allowed_method(
            self, client: httpx.AsyncClient, account: AccountCredentials, method: str, path: str,
            expected: set[str]) -> None:
        r = await client.request(method, path.replace("{A}", account.account_id), auth=account.basic)
        assert r.status_code == 405
        allowed = {m.strip() for m in r.headers["allow"].split(",")}
        assert expected <= allowed, allowed
        assert method not in allowed
        ApiErrorBody.model_validate(r.json())


async def _login_form(client: httpx.AsyncClient, setup: OidcSetup) -> tuple[str, dict[str, str]]:
    _, challenge = pkce_pair()
    r = await client.get(f"/{setup.issuer_id}/authorize?" + urlencode(authorize_params(setup, challenge)))
    assert r.status_code == 302
    page = await client.get(r.headers["location"])
    assert page.headers["referrer-policy"] == "same-origin"
    return f"/{setup.issuer_id}/login", form_fields(page.text)


class TestLoginOrigin:
    @pytest.mark.parametrize("headers", [
        {},
        {"Origin": "null"},
        {"Origin": "https://evil.example"},
        {"Referer": "https://evil.example/page"},
        {"Origin": "null", "Referer": "https://evil.example/"},
    ], ids=["none", "null", "cross-origin", "cross-referer", "null-and-cross-referer"])
    async def test_refused_without_proof_of_origin(self, client: httpx.AsyncClient, setup: OidcSetup,
                                                   account: AccountCredentials, pg: asyncpg.Pool,
                                                   headers: dict[str, str]) -> None:
        action, fields = await _login_form(client, setup)
        before = await count_rows(pg, "events", account.account_id)
        r = await client.post(action, data={**fields, "username": setup.username,
                                            "password": "correct horse battery staple 42"},
                              headers=headers)
        assert r.status_code == 403
        assert "set-cookie" not in r.headers or "session" not in r.headers["set-cookie"]
        assert await count_rows(pg, "events", account.account_id) == before

    @pytest.mark.parametrize("headers", [{"Origin": BASE}, {"Referer": BASE + "/somewhere"}],
                             ids=["origin", "referer-only"])
    async def test_accepted_from_our_own_pages(self, client: httpx.AsyncClient, setup: OidcSetup,
                                               headers: dict[str, str]) -> None:
        action, fields = await _login_form(client, setup)
        r = await client.post(action, data={**fields, "username": setup.username,
                                            "password": "correct horse battery staple 42"},
                              headers=headers)
        assert r.status_code == 303, r.text


class TestOversizeAuthorizationRequest:
    @pytest.mark.parametrize("extra", [
        {"state": "s" * 40_000},
        {"state": "s" * 1025},
        {"nonce": "n" * 5_000},
        {"login_hint": "h" * 1_000},
        {"ui_locales": "x" * 9_000},
    ], ids=["state-40k", "state-1025", "nonce", "login-hint", "unknown-param"])
    async def test_refused_and_never_carried(self, client: httpx.AsyncClient, setup: OidcSetup,
                                             extra: dict[str, str]) -> None:
        _, challenge = pkce_pair()
        r = await client.get(f"/{setup.issuer_id}/authorize?"
                             + urlencode(authorize_params(setup, challenge, **extra)))
        assert r.status_code == 400
        assert "location" not in r.headers
        assert len(r.content) < 10_000

    async def test_a_normal_state_still_round_trips(self, client: httpx.AsyncClient,
                                                    setup: OidcSetup) -> None:
        _, challenge = pkce_pair()
        state = "s" * 1024
        r = await client.get(f"/{setup.issuer_id}/authorize?"
                             + urlencode(authorize_params(setup, challenge, state=state)))
        assert r.status_code == 302
        assert "/login?" in r.headers["location"]
        assert parse_qs(urlsplit(r.headers["location"]).query)["return"]
