"""What the upstream says is checked before anything changes: an ID token with the wrong `iss`,
`aud`, `nonce`, an expired one or a bad signature, an upstream error, a mismatched state. Each
refusal leaves users, identities, memberships, sessions and codes as they were. The presets run
against the same fake: GitHub (user and emails API) and Microsoft (its email never links)."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
from authpi_admin import AuthPIAdmin

from tests.conftest import AccountCredentials
from tests.federation.fake_upstream import Fake, fake, fake_server  # noqa: F401
from tests.federation.helpers import Walker, events_of, snapshot
from tests.fixtures.server import LiveServer
from tests.oidc.helpers import OidcSetup


async def method(admin: AuthPIAdmin, down: OidcSetup, fake: Fake, type: str = "oidc",  # noqa: F811
                 **settings: object) -> str:
    base = {"client_id": "fake-client", "client_secret": "fake-secret"}
    if type == "github":
        base.update(authorization_endpoint=f"{fake.url}/authorize", token_endpoint=f"{fake.url}/token",
                    api_base_url=f"{fake.url}/gh")
    else:
        base["issuer"] = fake.url
    m = await admin.issuer(down.issuer_id).auth_methods.create(
        {"type": type, "name": "Fake", "settings": {**base, **settings}})
    return m.model_dump()["id"]


class TestHonestUpstream:
    async def test_state_nonce_and_pkce_go_upstream_and_the_user_signs_in(
            self, admin: AuthPIAdmin, account: AccountCredentials, live_server: LiveServer, down: OidcSetup,
            http: httpx.AsyncClient, fake: Fake, pg: asyncpg.Pool) -> None:  # noqa: F811
        method_id = await method(admin, down, fake)
        walker = Walker(http, live_server.url, down)
        claims = await walker.tokens(await walker.via_source(method_id, "unused"))
        asked = fake.requests[-1]
        assert len(asked["state"]) >= 32
        assert len(asked["nonce"]) >= 32
        assert asked["code_challenge_method"] == "S256"
        assert asked["redirect_uri"] == (
            f"{live_server.url}/{down.issuer_id}/login/federated/{method_id}/callback")
        assert fake.pkce_ok == [True]
        assert claims["amr"] == ["fed"]
        assert claims["email"] == "fake@upstream.example"


REFUSED_TOKENS = [
    ({"iss": "https://evil.example"}, False),
    ({"aud": "someone-else"}, False),
    ({"nonce": "not-the-nonce"}, False),
    ({"exp": 1_000_000_000}, False),
    ({}, True),  # signed by another key under the same kid
]


class TestRefusals:
    @pytest.mark.parametrize(("claims", "other_key"), REFUSED_TOKENS)
    async def test_a_bad_id_token_changes_nothing(
            self, admin: AuthPIAdmin, account: AccountCredentials, live_server: LiveServer, down: OidcSetup,
            http: httpx.AsyncClient, fake: Fake, pg: asyncpg.Pool, claims: dict,  # noqa: F811
            other_key: bool) -> None:
        method_id = await method(admin, down, fake)
        fake.claims, fake.sign_with_other_key = claims, other_key
        before = await snapshot(pg, account.account_id, down.issuer_id)
        page = await Walker(http, live_server.url, down).via_source(method_id, "unused")
        assert page.status_code == 400, page.text
        assert "could not be verified" in page.text
        assert await snapshot(pg, account.account_id, down.issuer_id) == before
        failure = (await events_of(pg, account.account_id, "user.verification.failed"))[-1]
        assert (failure["reason"], failure["source_id"]) == ("upstream_unverified", method_id)
        assert "ID token" in failure["detail"]

    async def test_an_upstream_error_is_a_clear_page(
            self, admin: AuthPIAdmin, account: AccountCredentials, live_server: LiveServer, down: OidcSetup,
            http: httpx.AsyncClient, fake: Fake, pg: asyncpg.Pool) -> None:  # noqa: F811
        method_id = await method(admin, down, fake)
        fake.authorize_error = "access_denied"
        before = await snapshot(pg, account.account_id, down.issuer_id)
        page = await Walker(http, live_server.url, down).via_source(method_id, "unused")
        assert page.status_code == 400
        assert "The identity provider refused the sign-in (access_denied)" in page.text
        assert await snapshot(pg, account.account_id, down.issuer_id) == before

    async def test_a_mismatched_state_changes_nothing(
            self, admin: AuthPIAdmin, account: AccountCredentials, live_server: LiveServer, down: OidcSetup,
            http: httpx.AsyncClient, fake: Fake, pg: asyncpg.Pool) -> None:  # noqa: F811
        method_id = await method(admin, down, fake)
        fake.forge_state = True
        before = await snapshot(pg, account.account_id, down.issuer_id)
        walker = Walker(http, live_server.url, down)
        page = await walker.via_source(method_id, "unused")
        assert page.status_code == 400
        assert await snapshot(pg, account.account_id, down.issuer_id) == before
        assert fake.pkce_ok == []  # the code was never redeemed
        # Nor does a callback reach anything from a browser that never started a sign-in.
        async with httpx.AsyncClient(timeout=30) as stranger:
            r = await stranger.get(str(walker.upstream_redirect))
        assert r.status_code == 400
        reasons = [e["reason"] for e in await events_of(pg, account.account_id, "user.verification.failed")]
        assert reasons[-2:] == ["state_mismatch", "no_pending_sign_in"]

    async def test_an_upstream_on_a_private_address_is_refused_at_sign_in_time(
            self, admin: AuthPIAdmin, account: AccountCredentials, live_server: LiveServer, down: OidcSetup,
            http: httpx.AsyncClient, fake: Fake, pg: asyncpg.Pool,  # noqa: F811
            monkeypatch: pytest.MonkeyPatch) -> None:
        """Stored while private addresses were allowed; once they are not, the fetch itself is refused
        (the guarded transport checks the address it connects to)."""
        method_id = await method(admin, down, fake)
        live_app = live_server.server.config.app
        monkeypatch.setattr(live_app.state.settings, "webhooks_allow_private", False)
        before = await snapshot(pg, account.account_id, down.issuer_id)
        page = await Walker(http, live_server.url, down).via_source(method_id, "unused")
        assert page.status_code == 502
        assert fake.requests == []
        assert await snapshot(pg, account.account_id, down.issuer_id) == before
        failure = (await events_of(pg, account.account_id, "user.verification.failed"))[-1]
        assert failure["reason"] == "upstream_unavailable"
        assert "non-public" in failure["detail"]


class TestPresets:
    async def test_github_signs_in_through_its_user_and_emails_api(
            self, admin: AuthPIAdmin, account: AccountCredentials, live_server: LiveServer, down: OidcSetup,
            http: httpx.AsyncClient, fake: Fake, pg: asyncpg.Pool) -> None:  # noqa: F811
        method_id = await method(admin, down, fake, type="github")
        walker = Walker(http, live_server.url, down)
        claims = await walker.tokens(await walker.via_source(method_id, "unused"))
        assert "nonce" not in fake.requests[-1]
        assert fake.pkce_ok == [True]
        user = await pg.fetchrow("SELECT username FROM users WHERE id = $1", claims["sub"])
        assert user["username"] == "octo@cat.example"
        identity = await pg.fetchrow("SELECT subject FROM federated_identities WHERE user_id = $1",
                                     claims["sub"])
        assert identity["subject"] == "583231"

    async def test_microsofts_email_never_links_by_itself(
            self, admin: AuthPIAdmin, account: AccountCredentials, live_server: LiveServer, down: OidcSetup,
            http: httpx.AsyncClient, fake: Fake, pg: asyncpg.Pool) -> None:  # noqa: F811
        method_id = await method(admin, down, fake, type="microsoft", trust_verified_email=True)
        fake.claims = {"email": down.username, "email_verified": True}
        before = await snapshot(pg, account.account_id, down.issuer_id)
        page = await Walker(http, live_server.url, down).via_source(method_id, "unused")
        assert page.status_code == 200
        assert "Link your account" in page.text
        assert await snapshot(pg, account.account_id, down.issuer_id) == before
