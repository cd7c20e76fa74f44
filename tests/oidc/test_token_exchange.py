"""Token exchange (RFC 8693): an agent, authenticated with its secret verifier, exchanges a user's
access token for a delegated one (`sub` the user, `act` the agent), scopes the intersection of the
user's, the agent's and those asked for. Every refusal issues nothing and records nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import asyncpg
import httpx
import pytest
from authpi_admin import AuthPIAdmin
from fastapi import FastAPI
from joserfc import jwt
from joserfc.jwk import KeySet

from app.oidc import tokens
from tests.oidc.helpers import OidcSetup, get_code, make_setup
from tests.oidc.test_agent_tokens import AgentSetup, make_agent

GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
AT = "urn:ietf:params:oauth:token-type:access_token"
USER_SCOPES = "openid invoices:read invoices:write"


@dataclasses.dataclass
class Delegation:
    setup: OidcSetup
    user_token: str
    agent: AgentSetup


async def user_setup(admin: AuthPIAdmin) -> OidcSetup:
    """An issuer whose web client may ask for API scopes, with a signed-up user."""
    s = await make_setup(admin)
    app_client = await admin.issuer(s.issuer_id).clients.create({
        "name": "acme-app", "type": "external", "confidential": True,
        "settings": {"protocol": "oidc", "scopes": ["openid", "invoices:read", "invoices:write"],
                     "openid": {"application_type": "web",
                                "grant_types": ["authorization_code", "refresh_token"],
                                "redirect_uris": ["http://localhost:3000/api/auth/callback"]}}})
    return dataclasses.replace(s, web_id=app_client.id, web_secret=str(app_client.secret))


async def user_access_token(http: httpx.AsyncClient, s: OidcSetup) -> str:
    code, verifier = await get_code(http, s, scope=USER_SCOPES)
    r = await http.post(f"/{s.issuer_id}/token", data={
        "grant_type": "authorization_code", "code": code, "code_verifier": verifier,
        "redirect_uri": "http://localhost:3000/api/auth/callback", "client_id": s.web_id,
        "client_secret": s.web_secret})
    assert r.status_code == 200, r.text
    assert r.json()["scope"] == USER_SCOPES
    return str(r.json()["access_token"])


@pytest.fixture
async def d(admin: AuthPIAdmin, client: httpx.AsyncClient) -> Delegation:
    s = await user_setup(admin)
    token = await user_access_token(client, s)
    agent = await make_agent(admin, s.issuer_id, scopes=["invoices:read", "reports:read"])
    return Delegation(s, token, agent)


async def exchange(http: httpx.AsyncClient, agent: AgentSetup, subject_token: str,
                   **extra: str) -> httpx.Response:
    return await http.post(agent.token_url, data={
        "grant_type": GRANT, "subject_token": subject_token, "subject_token_type": AT, **extra},
        auth=(agent.agent_id, agent.secret))


async def claims_of(http: httpx.AsyncClient, issuer_id: str, token: str) -> dict:
    keys = KeySet.import_key_set((await http.get(f"/{issuer_id}/jwks.json")).json())
    return dict(jwt.decode(token, keys, algorithms=["ES256"]).claims)


async def issued_events(pg: asyncpg.Pool, user_id: str) -> int:
    return int(await pg.fetchval("SELECT count(*) FROM events WHERE type = 'machine.token.issued' "
                                 "AND subject->>'id' = $1", user_id))


class TestExchange:
    async def test_delegated_token(self, client: httpx.AsyncClient, d: Delegation, admin: AuthPIAdmin
                                   ) -> None:
        r = await exchange(client, d.agent, d.user_token)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["issued_token_type"] == AT
        assert body["token_type"] == "Bearer"
        # user's {invoices:read, invoices:write} ∩ agent's {invoices:read, reports:read}
        assert body["scope"] == "invoices:read"
        assert 0 < body["expires_in"] <= 300
        assert r.headers["cache-control"] == "no-store"
        claims = await claims_of(client, d.setup.issuer_id, body["access_token"])
        user_claims = await claims_of(client, d.setup.issuer_id, d.user_token)
        assert claims["sub"] == d.setup.user_id
        assert claims["act"] == {"sub": d.agent.agent_id}
        assert claims["client_id"] == d.agent.agent_id
        assert claims["scope"] == "invoices:read"
        assert claims["gid"] == user_claims["gid"]
        events: list = []
        for _ in range(40):
            events = (await admin.events.list(event_types="machine.token.issued")).data
            if events:
                break
            await asyncio.sleep(0.1)
        assert len(events) == 1
        event = events[0]
        assert event.subject == {"type": "user", "id": d.setup.user_id}
        assert event.auth is not None
        assert event.auth.get("agent_id") == d.agent.agent_id
        assert event.data["act"] == {"sub": d.agent.agent_id}
        assert event.data["jti"] == claims["jti"]
        assert d.agent.secret not in str(event.model_dump())

    async def test_requested_scopes_narrow(self, client: httpx.AsyncClient, d: Delegation) -> None:
        r = await exchange(client, d.agent, d.user_token, scope="invoices:read")
        assert r.status_code == 200, r.text
        assert r.json()["scope"] == "invoices:read"

    async def test_nested_act_on_re_exchange(self, client: httpx.AsyncClient, d: Delegation,
                                             admin: AuthPIAdmin) -> None:
        first = (await exchange(client, d.agent, d.user_token)).json()["access_token"]
        second_agent = await make_agent(admin, d.setup.issuer_id, scopes=["invoices:read"])
        r = await exchange(client, second_agent, first)
        assert r.status_code == 200, r.text
        claims = await claims_of(client, d.setup.issuer_id, r.json()["access_token"])
        assert claims["sub"] == d.setup.user_id
        assert claims["act"] == {"sub": second_agent.agent_id, "act": {"sub": d.agent.agent_id}}

    async def test_suspending_the_agent_kills_the_delegated_token(
            self, client: httpx.AsyncClient, d: Delegation, admin: AuthPIAdmin) -> None:
        token = (await exchange(client, d.agent, d.user_token)).json()["access_token"]
        other = await make_agent(admin, d.setup.issuer_id, scopes=["invoices:read"])
        assert (await exchange(client, other, token)).status_code == 200
        await admin.issuer(d.setup.issuer_id).agent(d.agent.agent_id).update({"status": "suspended"})
        r = await exchange(client, other, token)
        assert (r.status_code, r.json()["error"]) == (400, "invalid_grant")


class TestRefusals:
    async def _nothing_issued(self, pg: asyncpg.Pool, d: Delegation) -> None:
        await asyncio.sleep(1.2)  # metered events are written within about a second
        assert await issued_events(pg, d.setup.user_id) == 0

    async def test_scope_escalation(self, client: httpx.AsyncClient, d: Delegation, pg: asyncpg.Pool) -> None:
        for scope in ("invoices:write", "reports:read", "invoices:read admin:all"):
            r = await exchange(client, d.agent, d.user_token, scope=scope)
            assert (r.status_code, r.json()["error"]) == (400, "invalid_scope"), scope
        await self._nothing_issued(pg, d)

    async def test_no_common_scope(self, client: httpx.AsyncClient, d: Delegation, admin: AuthPIAdmin,
                                   pg: asyncpg.Pool) -> None:
        agent = await make_agent(admin, d.setup.issuer_id, scopes=["reports:read"])
        r = await exchange(client, agent, d.user_token)
        assert (r.status_code, r.json()["error"]) == (400, "invalid_scope")
        await self._nothing_issued(pg, d)

    async def test_other_issuers_subject_token(self, client: httpx.AsyncClient, d: Delegation,
                                               admin: AuthPIAdmin, pg: asyncpg.Pool) -> None:
        foreign = await user_setup(admin)
        foreign_token = await user_access_token(client, foreign)
        r = await exchange(client, d.agent, foreign_token)
        assert (r.status_code, r.json()["error"]) == (400, "invalid_grant")
        await asyncio.sleep(1.2)
        assert await issued_events(pg, foreign.user_id) == 0

    async def test_other_accounts_agent_gets_nothing(self, client: httpx.AsyncClient, d: Delegation,
                                                     other_admin: AuthPIAdmin, pg: asyncpg.Pool) -> None:
        stranger = await make_agent(other_admin, scopes=["invoices:read"])
        # The stranger's own issuer: the user's token is of another issuer.
        r = await exchange(client, stranger, d.user_token)
        assert (r.status_code, r.json()["error"]) == (400, "invalid_grant")
        # At the user's issuer the stranger is not an agent.
        r = await client.post(d.agent.token_url, data={
            "grant_type": GRANT, "subject_token": d.user_token, "subject_token_type": AT},
            auth=(stranger.agent_id, stranger.secret))
        assert (r.status_code, r.json()["error"]) == (401, "invalid_client")
        await self._nothing_issued(pg, d)

    async def test_expired_subject_token(self, client: httpx.AsyncClient, d: Delegation, app: FastAPI,
                                         pg: asyncpg.Pool) -> None:
        rt = app.state.oidc
        keys = await rt.keys.get(rt.session_factory(), d.setup.issuer_id)
        claims = await claims_of(client, d.setup.issuer_id, d.user_token)
        past = int(time.time()) - 120
        expired = tokens.sign_access_token(keys, {**claims, "iat": past - 60, "exp": past})
        r = await exchange(client, d.agent, expired)
        assert (r.status_code, r.json()["error"]) == (400, "invalid_grant")
        await self._nothing_issued(pg, d)

    async def test_revoked_subject_token(self, client: httpx.AsyncClient, d: Delegation,
                                         pg: asyncpg.Pool) -> None:
        r = await client.post(f"/{d.setup.issuer_id}/revoke", data={
            "token": d.user_token, "client_id": d.setup.web_id, "client_secret": d.setup.web_secret})
        assert r.status_code == 200
        r = await exchange(client, d.agent, d.user_token)
        assert (r.status_code, r.json()["error"]) == (400, "invalid_grant")
        await self._nothing_issued(pg, d)

    async def test_blocked_agent(self, client: httpx.AsyncClient, d: Delegation, admin: AuthPIAdmin,
                                 pg: asyncpg.Pool) -> None:
        await admin.issuer(d.setup.issuer_id).agent(d.agent.agent_id).update({"status": "suspended"})
        r = await exchange(client, d.agent, d.user_token)
        assert (r.status_code, r.json()["error"]) == (401, "invalid_client")
        await self._nothing_issued(pg, d)

    async def test_wrong_secret_and_plain_clients(self, client: httpx.AsyncClient, d: Delegation,
                                                  pg: asyncpg.Pool) -> None:
        r = await client.post(d.agent.token_url, data={
            "grant_type": GRANT, "subject_token": d.user_token, "subject_token_type": AT},
            auth=(d.agent.agent_id, "agts_wrong"))
        assert (r.status_code, r.json()["error"]) == (401, "invalid_client")
        r = await client.post(d.agent.token_url, data={
            "grant_type": GRANT, "subject_token": d.user_token, "subject_token_type": AT},
            auth=(d.setup.web_id, d.setup.web_secret))
        assert (r.status_code, r.json()["error"]) == (400, "unauthorized_client")
        await self._nothing_issued(pg, d)

    async def test_agent_token_is_not_a_user_subject(self, client: httpx.AsyncClient, d: Delegation) -> None:
        own = (await client.post(d.agent.token_url, data={"grant_type": "client_credentials"},
                                 auth=(d.agent.agent_id, d.agent.secret))).json()["access_token"]
        r = await exchange(client, d.agent, own)
        assert (r.status_code, r.json()["error"]) == (400, "invalid_grant")

    async def test_bad_requests(self, client: httpx.AsyncClient, d: Delegation) -> None:
        cases = [
            {"subject_token_type": "urn:ietf:params:oauth:token-type:id_token"},
            {"requested_token_type": "urn:ietf:params:oauth:token-type:refresh_token"},
            {"actor_token": "x", "actor_token_type": AT},
        ]
        for extra in cases:
            r = await exchange(client, d.agent, d.user_token, **extra)
            assert (r.status_code, r.json()["error"]) == (400, "invalid_request"), extra
        r = await exchange(client, d.agent, d.user_token, audience="https://api.example")
        assert (r.status_code, r.json()["error"]) == (400, "invalid_target")
        r = await exchange(client, d.agent, "not-a-jwt")
        assert (r.status_code, r.json()["error"]) == (400, "invalid_grant")

