"""Agents at speed and in full: verified agent secrets are cached like API keys (no argon2, no
database on a repeat), invalidated through the hub so suspension and verifier removal cut an agent
off on the next request on every process; agents revoke and introspect their own tokens only."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
from authpi_admin import AuthPIAdmin
from fastapi import FastAPI

from tests.api_key import test_cross_process as xproc
from tests.api_key.test_cross_process import ServeProcess
from tests.conftest import new_account
from tests.oidc.helpers import make_setup
from tests.oidc.test_agent_tokens import AgentSetup, _token, make_agent


def _argon2_hashes(app: FastAPI) -> int:
    return app.state.runtime.argon2.hashes


class TestWarmVerification:
    async def test_a_repeat_runs_no_argon2(self, app: FastAPI, client: httpx.AsyncClient,
                                           admin: AuthPIAdmin, pg: asyncpg.Pool) -> None:
        s = await make_agent(admin)
        assert (await _token(client, s)).status_code == 200
        before, warm = _argon2_hashes(app), app.state.agent_authenticator.stats["warm"]
        for _ in range(5):
            assert (await _token(client, s)).status_code == 200
        assert _argon2_hashes(app) == before
        assert app.state.agent_authenticator.stats["warm"] == warm + 5
        # Every use is still counted on the verifier (written in one batch).
        await app.state.agent_authenticator.flush()
        assert await pg.fetchval("SELECT usage_count FROM agent_verifiers WHERE id = $1",
                                 s.verifier_id) == 6

    async def test_a_wrong_secret_is_not_served_by_the_cache(self, client: httpx.AsyncClient,
                                                             admin: AuthPIAdmin) -> None:
        s = await make_agent(admin)
        assert (await _token(client, s)).status_code == 200
        r = await _token(client, s, secret=s.secret + "x")
        assert (r.status_code, r.json()["error"]) == (401, "invalid_client")

    async def test_scope_change_is_seen_at_once(self, client: httpx.AsyncClient, admin: AuthPIAdmin) -> None:
        s = await make_agent(admin)
        assert (await _token(client, s)).json()["scope"] == "invoices:read invoices:write reports:read"
        await admin.issuer(s.issuer_id).agent(s.agent_id).update({"scopes": ["reports:read"]})
        assert (await _token(client, s)).json()["scope"] == "reports:read"

    async def test_verifier_removal_cuts_the_cached_secret(self, client: httpx.AsyncClient,
                                                           admin: AuthPIAdmin) -> None:
        s = await make_agent(admin)
        for _ in range(2):
            assert (await _token(client, s)).status_code == 200
        await admin.issuer(s.issuer_id).agent(s.agent_id).verifiers.delete(s.verifier_id)
        assert (await _token(client, s)).status_code == 401


async def _bearer(client: httpx.AsyncClient, token: str) -> int:
    return (await client.get("/v1/me", headers={"authorization": f"Bearer {token}"})).status_code


class TestAgentRevokeAndIntrospect:
    async def test_an_agent_revokes_its_own_token(self, client: httpx.AsyncClient,
                                                  admin: AuthPIAdmin) -> None:
        s = await make_agent(admin)
        token = (await _token(client, s)).json()["access_token"]
        assert await _bearer(client, token) == 200
        r = await client.post(f"/{s.issuer_id}/revoke", data={"token": token},
                              auth=(s.agent_id, s.secret))
        assert r.status_code == 200, r.text
        assert await _bearer(client, token) == 401
        info = await client.post(f"/{s.issuer_id}/introspect", data={"token": token},
                                 auth=(s.agent_id, s.secret))
        assert info.json() == {"active": False}

    async def test_an_agent_cannot_revoke_anothers_token(self, client: httpx.AsyncClient,
                                                          admin: AuthPIAdmin) -> None:
        s = await make_agent(admin)
        other = await make_agent(admin, issuer_id=s.issuer_id)
        token = (await _token(client, other)).json()["access_token"]
        r = await client.post(f"/{s.issuer_id}/revoke", data={
            "token": token, "client_id": s.agent_id, "client_secret": s.secret})
        assert r.status_code == 200  # RFC 7009: answered alike, and nothing done
        assert await _bearer(client, token) == 200

    async def test_introspection_of_own_and_others_tokens(self, client: httpx.AsyncClient,
                                                          admin: AuthPIAdmin) -> None:
        s = await make_agent(admin)
        own = (await _token(client, s, scope="invoices:read")).json()["access_token"]
        r = await client.post(f"/{s.issuer_id}/introspect", data={"token": own},
                              auth=(s.agent_id, s.secret))
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["active"], body["sub"], body["client_id"], body["scope"]) == (
            True, s.agent_id, s.agent_id, "invoices:read")
        other = await make_agent(admin, issuer_id=s.issuer_id)
        theirs = (await _token(client, other)).json()["access_token"]
        r = await client.post(f"/{s.issuer_id}/introspect", data={"token": theirs},
                              auth=(s.agent_id, s.secret))
        assert r.json() == {"active": False}

    async def test_a_clients_token_is_not_an_agents_business(self, client: httpx.AsyncClient,
                                                              admin: AuthPIAdmin) -> None:
        setup = await make_setup(admin)
        s = await make_agent(admin, issuer_id=setup.issuer_id)
        m2m = (await client.post(f"/{setup.issuer_id}/token", data={"grant_type": "client_credentials"},
                                 auth=(setup.m2m_id, setup.m2m_secret))).json()["access_token"]
        r = await client.post(f"/{setup.issuer_id}/introspect", data={"token": m2m},
                              auth=(s.agent_id, s.secret))
        assert r.json() == {"active": False}
        await client.post(f"/{setup.issuer_id}/revoke", data={"token": m2m}, auth=(s.agent_id, s.secret))
        assert await _bearer(client, m2m) == 200

    async def test_wrong_secret_and_suspended_agent_are_invalid_client(
            self, client: httpx.AsyncClient, admin: AuthPIAdmin) -> None:
        s = await make_agent(admin)
        token = (await _token(client, s)).json()["access_token"]
        for path in ("revoke", "introspect"):
            r = await client.post(f"/{s.issuer_id}/{path}", data={"token": token},
                                  auth=(s.agent_id, "agts_wrong"))
            assert (r.status_code, r.json()["error"]) == (401, "invalid_client")
        await admin.issuer(s.issuer_id).agent(s.agent_id).update({"status": "suspended"})
        r = await client.post(f"/{s.issuer_id}/introspect", data={"token": token},
                              auth=(s.agent_id, s.secret))
        assert r.status_code == 401


servers = xproc.servers  # the two `authpi serve` processes of the API keys' cross-process tests


def _remote_token(server: ServeProcess, s: AgentSetup) -> httpx.Response:
    return httpx.post(f"{server.url}/{s.issuer_id}/token",
                      data={"grant_type": "client_credentials"}, auth=(s.agent_id, s.secret))


class TestCrossProcess:
    async def _agent(self, app: FastAPI, servers: list[ServeProcess]) -> tuple[tuple[str, str], AgentSetup]:
        account = await new_account(app, "agents-xproc")
        http = httpx.AsyncClient(base_url=servers[0].url)
        admin = AuthPIAdmin(api_key=account.basic, base_url=servers[0].url, http_client=http)
        s = await make_agent(admin)
        await http.aclose()
        for server in servers:  # cold, then cached, on both
            for _ in range(2):
                assert _remote_token(server, s).status_code == 200
        return account.basic, s

    @pytest.mark.parametrize("action", ["suspend", "remove_verifier", "delete"])
    async def test_next_request_on_the_other_process_fails(self, app: FastAPI,
                                                           servers: list[ServeProcess],
                                                           action: str) -> None:
        basic, s = await self._agent(app, servers)
        a, b = servers
        async with httpx.AsyncClient(base_url=a.url) as http:
            sdk = AuthPIAdmin(api_key=basic, base_url=a.url, http_client=http)
            scope = sdk.issuer(s.issuer_id).agent(s.agent_id)
            if action == "suspend":
                await scope.update({"status": "suspended"})
            elif action == "remove_verifier":
                await scope.verifiers.delete(s.verifier_id)
            else:
                await sdk.issuer(s.issuer_id).agents.delete(s.agent_id)
        r = _remote_token(b, s)
        assert (r.status_code, r.json()["error"]) == (401, "invalid_client")
        assert _remote_token(a, s).status_code == 401
