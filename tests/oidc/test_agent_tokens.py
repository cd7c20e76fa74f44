"""Agents at the token endpoint: `client_credentials` with the agent's `agt_` id and a secret
verifier (SDK-CONTRACT §4.3): 5-minute access tokens, no refresh or ID token, scopes limited to
the agent's, and every failure an `invalid_client` 401."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import asyncpg
import httpx
import pytest
from authpi_admin import AuthPIAdmin
from authpi_idp import IdpClient
from authpi_idp.errors import OAuthError
from fastapi import FastAPI
from joserfc import jwt
from joserfc.jwk import KeySet

SCOPES = ["invoices:read", "invoices:write", "reports:read"]


@dataclass
class AgentSetup:
    issuer_id: str
    agent_id: str
    verifier_id: str
    secret: str

    @property
    def token_url(self) -> str:
        return f"/{self.issuer_id}/token"


async def make_agent(admin: AuthPIAdmin, issuer_id: str | None = None,
                     scopes: list[str] | None = None) -> AgentSetup:
    if issuer_id is None:
        issuer_id = (await admin.issuers.create({"name": "acme-prod"})).id
    agent = await admin.issuer(issuer_id).agents.create(
        {"name": "invoice-bot", "model": "claude", "provider": "anthropic",
         "scopes": SCOPES if scopes is None else scopes})
    verifier = await admin.issuer(issuer_id).agent(agent.id).verifiers.create({"type": "secret"})
    assert verifier.secret
    return AgentSetup(issuer_id, agent.id, verifier.id, verifier.secret)


@pytest.fixture
async def setup(admin: AuthPIAdmin) -> AgentSetup:
    return await make_agent(admin)


async def _token(client: httpx.AsyncClient, s: AgentSetup, secret: str | None = None,
                 **extra: str) -> httpx.Response:
    return await client.post(s.token_url, data={
        "grant_type": "client_credentials", "client_id": s.agent_id,
        "client_secret": s.secret if secret is None else secret, **extra})


async def _claims(client: httpx.AsyncClient, s: AgentSetup, token: str) -> tuple[dict, dict]:
    """Header and claims, verified against the issuer's published JWKS."""
    keys = KeySet.import_key_set((await client.get(f"/{s.issuer_id}/jwks.json")).json())
    decoded = jwt.decode(token, keys, algorithms=["ES256"])
    return dict(decoded.header), dict(decoded.claims)


def _assert_invalid_client(r: httpx.Response) -> None:
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "invalid_client"


class TestAgentToken:
    async def test_token_response_and_claims(self, client: httpx.AsyncClient, setup: AgentSetup) -> None:
        r = await _token(client, setup)
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
        assert (body["token_type"], body["expires_in"]) == ("Bearer", 300)
        assert body["scope"] == " ".join(SCOPES)
        assert r.headers["cache-control"] == "no-store"
        header, claims = await _claims(client, setup, body["access_token"])
        assert (header["alg"], header["typ"]) == ("ES256", "at+jwt")
        assert claims["sub"] == setup.agent_id
        assert claims["client_id"] == setup.agent_id
        assert claims["iss"] == f"http://testserver/{setup.issuer_id}"
        assert claims["dat"] == {"type": "agent"}
        assert claims["exp"] - claims["iat"] == 300
        assert claims["exp"] > time.time()
        assert claims["scope"] == " ".join(SCOPES)
        assert "gid" not in claims
        assert "organizations" not in claims

    async def test_basic_authentication(self, client: httpx.AsyncClient, setup: AgentSetup) -> None:
        r = await client.post(setup.token_url, data={"grant_type": "client_credentials"},
                              auth=(setup.agent_id, setup.secret))
        assert r.status_code == 200, r.text
        _, claims = await _claims(client, setup, r.json()["access_token"])
        assert claims["sub"] == setup.agent_id
        bad = await client.post(setup.token_url, data={"grant_type": "client_credentials"},
                                auth=(setup.agent_id, "agts_wrong"))
        _assert_invalid_client(bad)
        assert bad.headers["www-authenticate"].startswith("Basic")

    async def test_verifier_use_is_counted(self, app: FastAPI, client: httpx.AsyncClient,
                                           setup: AgentSetup, pg: asyncpg.Pool) -> None:
        assert (await _token(client, setup)).status_code == 200
        await app.state.agent_authenticator.flush()  # uses are written in batches (every second)
        row = await pg.fetchrow("SELECT usage_count, last_used_at FROM agent_verifiers WHERE id = $1",
                                setup.verifier_id)
        assert row["usage_count"] == 1
        assert row["last_used_at"] is not None


class TestAgentScopes:
    async def test_requested_scopes_are_narrowed(self, client: httpx.AsyncClient, setup: AgentSetup) -> None:
        r = await _token(client, setup, scope="reports:read invoices:read")
        assert r.status_code == 200, r.text
        # In the agent's order, only what was asked for.
        assert r.json()["scope"] == "invoices:read reports:read"
        _, claims = await _claims(client, setup, r.json()["access_token"])
        assert claims["scope"] == "invoices:read reports:read"

    async def test_scope_outside_the_agents_is_invalid_scope(self, client: httpx.AsyncClient,
                                                              setup: AgentSetup) -> None:
        r = await _token(client, setup, scope="invoices:read admin:all")
        assert r.status_code == 400, r.text
        assert r.json()["error"] == "invalid_scope"

    async def test_agent_without_scopes_gets_an_empty_scope(self, client: httpx.AsyncClient,
                                                             admin: AuthPIAdmin) -> None:
        s = await make_agent(admin, scopes=[])
        r = await _token(client, s)
        assert r.status_code == 200, r.text
        assert r.json()["scope"] == ""
        assert (await _token(client, s, scope="invoices:read")).json()["error"] == "invalid_scope"


class TestAgentAuthenticationFailures:
    async def test_wrong_secret(self, client: httpx.AsyncClient, setup: AgentSetup) -> None:
        _assert_invalid_client(await _token(client, setup, secret="agts_not-the-secret"))

    async def test_missing_secret(self, client: httpx.AsyncClient, setup: AgentSetup) -> None:
        r = await client.post(setup.token_url, data={"grant_type": "client_credentials",
                                                     "client_id": setup.agent_id})
        _assert_invalid_client(r)

    async def test_unknown_and_malformed_agent_ids(self, client: httpx.AsyncClient,
                                                   setup: AgentSetup) -> None:
        for agent_id in ("agt_01JUNKNOWN0000000000000000", "agt_nope"):
            r = await client.post(setup.token_url, data={
                "grant_type": "client_credentials", "client_id": agent_id, "client_secret": setup.secret})
            _assert_invalid_client(r)

    async def test_suspended_agent(self, client: httpx.AsyncClient, setup: AgentSetup,
                                   admin: AuthPIAdmin) -> None:
        token = (await _token(client, setup)).json()["access_token"]
        await admin.issuer(setup.issuer_id).agent(setup.agent_id).update({"status": "suspended"})
        _assert_invalid_client(await _token(client, setup))
        # Tokens already issued stop working too.
        me = await client.get("/v1/me", headers={"authorization": f"Bearer {token}"})
        assert me.status_code == 401
        await admin.issuer(setup.issuer_id).agent(setup.agent_id).update({"status": "active"})
        assert (await _token(client, setup)).status_code == 200

    async def test_deleted_agent(self, client: httpx.AsyncClient, setup: AgentSetup,
                                 admin: AuthPIAdmin) -> None:
        await admin.issuer(setup.issuer_id).agents.delete(setup.agent_id)
        _assert_invalid_client(await _token(client, setup))

    async def test_deleted_verifier(self, client: httpx.AsyncClient, setup: AgentSetup,
                                    admin: AuthPIAdmin) -> None:
        await admin.issuer(setup.issuer_id).agent(setup.agent_id).verifiers.delete(setup.verifier_id)
        _assert_invalid_client(await _token(client, setup))

    async def test_other_verifier_still_works(self, client: httpx.AsyncClient, setup: AgentSetup,
                                              admin: AuthPIAdmin) -> None:
        scope = admin.issuer(setup.issuer_id).agent(setup.agent_id)
        second = await scope.verifiers.create({"type": "secret"})
        await scope.verifiers.delete(setup.verifier_id)
        assert (await _token(client, setup, secret=str(second.secret))).status_code == 200

    async def test_wrong_grant_for_an_agent(self, client: httpx.AsyncClient, setup: AgentSetup) -> None:
        r = await client.post(setup.token_url, data={
            "grant_type": "refresh_token", "refresh_token": "rt_x", "client_id": setup.agent_id,
            "client_secret": setup.secret})
        _assert_invalid_client(r)


class TestAgentIsolation:
    async def test_another_issuers_agent(self, client: httpx.AsyncClient, setup: AgentSetup,
                                         admin: AuthPIAdmin) -> None:
        sibling = await admin.issuers.create({"name": "acme-staging"})
        r = await client.post(f"/{sibling.id}/token", data={
            "grant_type": "client_credentials", "client_id": setup.agent_id, "client_secret": setup.secret})
        _assert_invalid_client(r)

    async def test_another_accounts_agent(self, client: httpx.AsyncClient, setup: AgentSetup,
                                          other_admin: AuthPIAdmin) -> None:
        other = await other_admin.issuers.create({"name": "other-prod"})
        r = await client.post(f"/{other.id}/token", data={
            "grant_type": "client_credentials", "client_id": setup.agent_id, "client_secret": setup.secret})
        _assert_invalid_client(r)


class TestAgentTokenUse:
    async def test_me_and_userinfo(self, client: httpx.AsyncClient, setup: AgentSetup) -> None:
        token = (await _token(client, setup, scope="invoices:read")).json()["access_token"]
        bearer = {"authorization": f"Bearer {token}"}
        me = await client.get("/v1/me", headers=bearer)
        assert me.status_code == 200, me.text
        data = me.json()["data"]
        # Exactly what a client's token gets: a machine caller of the issuer, no organizations.
        assert data == {"type": "client", "accounts": [], "organizations": [],
                        "issuer_id": setup.issuer_id}
        info = await client.get(f"/{setup.issuer_id}/userinfo", headers=bearer)
        assert info.status_code == 200
        assert info.json() == {"sub": setup.agent_id, "organizations": []}


class TestAgentTokenEvent:
    async def test_machine_token_issued_in_the_trail(self, client: httpx.AsyncClient, setup: AgentSetup,
                                                     admin: AuthPIAdmin) -> None:
        r = await _token(client, setup, scope="invoices:read")
        _, claims = await _claims(client, setup, r.json()["access_token"])
        events: list = []
        for _ in range(40):  # metered: written by the batcher within about a second
            events = (await admin.events.list(event_types="machine.token.issued")).data
            if events:
                break
            await asyncio.sleep(0.1)
        assert len(events) == 1
        event = events[0]
        assert event.subject == {"type": "agent", "id": setup.agent_id}
        assert event.data == {"jti": claims["jti"], "scope": "invoices:read", "exp": claims["exp"]}
        assert event.source.endswith(f"/issuers/{setup.issuer_id}")
        assert setup.secret not in str(event.model_dump())

    async def test_failures_are_not_recorded_as_issued(self, client: httpx.AsyncClient, setup: AgentSetup,
                                                       pg: asyncpg.Pool) -> None:
        await _token(client, setup, secret="agts_wrong")
        await asyncio.sleep(1.2)
        count = await pg.fetchval("SELECT count(*) FROM events WHERE type = 'machine.token.issued' "
                                  "AND subject->>'id' = $1", setup.agent_id)
        assert count == 0


class TestIdpClientAgent:
    async def test_client_credentials_through_the_sdk(self, live_server, admin: AuthPIAdmin) -> None:
        s = await make_agent(admin)
        issuer_url = f"{live_server.url}/{s.issuer_id}"
        async with IdpClient(issuer_url, s.agent_id, client_secret=s.secret) as idp:
            agent = await idp.client_credentials(["invoices:read"])
            assert agent.id == s.agent_id
            assert agent.type.value == "agent"
            assert agent.tokens.refresh_token is None
            assert agent.tokens.id_token is None
            assert 295 <= agent.tokens.expires_at - int(time.time()) <= 300
            assert agent.has_access("read", "invoices")
            assert not agent.has_access("write", "invoices")
            full = await idp.client_credentials()
            assert full.tokens.scope == " ".join(SCOPES)
            with pytest.raises(OAuthError) as exc:
                await idp.client_credentials(["admin:all"])
            assert exc.value.error == "invalid_scope"
        async with IdpClient(issuer_url, s.agent_id, client_secret="agts_wrong") as idp:
            with pytest.raises(OAuthError) as exc:
                await idp.client_credentials()
            assert exc.value.error == "invalid_client"
        async with httpx.AsyncClient() as http:
            r = await http.post(f"{issuer_url}/token", data={
                "grant_type": "client_credentials", "client_id": s.agent_id, "client_secret": s.secret})
            assert r.status_code == 200
            keys = KeySet.import_key_set((await http.get(f"{issuer_url}/jwks.json")).json())
            claims = jwt.decode(r.json()["access_token"], keys, algorithms=["ES256"]).claims
            assert claims["sub"] == s.agent_id
            assert claims["iss"] == issuer_url
            me = await http.get(f"{live_server.url}/v1/me",
                                headers={"authorization": f"Bearer {r.json()['access_token']}"})
            assert me.status_code == 200
