"""Agents and agent verifiers through the official SDK and raw HTTP: CRUD, filters, verifiers,
authentication, events, isolation."""

from __future__ import annotations

import json

import asyncpg
import httpx
import pytest
from authpi_admin import AuthPIAdmin
from authpi_admin.errors import ConflictError, NotFoundError, PreconditionFailedError, ValidationError
from authpi_admin.generated.models import Agent, AgentVerifiersCreateResponse, AgentVerifiersListItem
from fastapi import FastAPI

from tests.conftest import AccountCredentials, count_rows
from tests.fixtures.tenancy import event_types, last_event

WALLET = "eip155:1:0xab16a96D359eC26a11e2C2b3d8f8B8942d5Bfcdb"
AGENT_BODY = {"name": "invoice-bot", "description": "reads invoices", "model": "gpt-4o",
              "provider": "openai", "version": "1.0", "scopes": ["invoices:read"]}


def agents_path(account_id: str, issuer_id: str) -> str:
    return f"/v1/accounts/{account_id}/issuers/{issuer_id}/agents"


class TestCreateAgent:
    async def test_create_records_row_and_event(self, admin: AuthPIAdmin, account: AccountCredentials,
                                                issuer_id: str, pg: asyncpg.Pool):
        agent = await admin.issuer(issuer_id).agents.create({**AGENT_BODY, "metadata": {"team": "ap"}})
        assert isinstance(agent, Agent)
        assert agent.id.startswith("agt_")
        assert (agent.name, agent.status, agent.issuer_id, agent.model, agent.provider, agent.version) == (
            "invoice-bot", "active", issuer_id, "gpt-4o", "openai", "1.0")
        assert agent.scopes == ["invoices:read"]
        assert agent.metadata.model_dump() == {"team": "ap"}
        assert agent._etag == f'"{agent.created_at}"'
        row = await pg.fetchrow("SELECT * FROM agents WHERE id = $1", agent.id)
        assert (row["account_id"], row["issuer_id"]) == (account.account_id, issuer_id)
        event = await last_event(pg, account.account_id, "agent.created")
        assert json.loads(event["subject"]) == {"type": "agent", "id": agent.id}
        assert event["issuer_id"] == issuer_id

    @pytest.mark.parametrize("body", [
        {}, {"name": ""}, {"name": "x" * 201}, {"name": "a", "scopes": ["BAD SCOPE"]},
        {"name": "a", "scopes": [f"s{i}:read" for i in range(257)]}, {"name": "a", "metadata": []},
        {"name": "a", "unknown": 1}, {"name": "a", "description": "d" * 2001},
    ])
    async def test_bad_input_is_422_and_writes_nothing(self, client: httpx.AsyncClient,
                                                       account: AccountCredentials, issuer_id: str,
                                                       pg: asyncpg.Pool, body: dict):
        before = (await count_rows(pg, "agents", account.account_id),
                  await count_rows(pg, "events", account.account_id))
        resp = await client.post(agents_path(account.account_id, issuer_id), json=body, auth=account.basic)
        assert resp.status_code == 422, resp.text
        assert resp.json()["fields"]
        assert (await count_rows(pg, "agents", account.account_id),
                await count_rows(pg, "events", account.account_id)) == before

    async def test_sdk_raises_validation_error(self, admin: AuthPIAdmin, issuer_id: str):
        with pytest.raises(ValidationError):
            await admin.issuer(issuer_id).agents.create({"description": "no name"})

    async def test_unknown_issuer_is_404(self, admin: AuthPIAdmin):
        with pytest.raises(NotFoundError):
            await admin.issuer("i_01JUNKNOWN0000000000000000").agents.create(AGENT_BODY)


class TestListAgents:
    async def test_pages_newest_first_and_filters(self, admin: AuthPIAdmin, issuer_id: str):
        agents = admin.issuer(issuer_id).agents
        a = await agents.create({"name": "a", "model": "gpt-4o", "provider": "openai"})
        b = await agents.create({"name": "b", "model": "claude", "provider": "anthropic"})
        c = await agents.create({"name": "c", "model": "claude", "provider": "anthropic"})
        await admin.issuer(issuer_id).agent(c.id).verifiers.create({"type": "secret"})
        await admin.issuer(issuer_id).agent(a.id).update({"status": "suspended"})
        first = await agents.list(limit=2)
        assert [x.id for x in first.data] == [c.id, b.id]
        assert first.has_more
        second = await agents.list(limit=2, cursor=first.next_cursor)
        assert [x.id for x in second.data] == [a.id]
        assert not second.has_more
        assert [x.id for x in (await agents.list(model="claude")).data] == [c.id, b.id]
        assert [x.id for x in (await agents.list(provider="openai")).data] == [a.id]
        assert [x.id for x in (await agents.list(status="suspended")).data] == [a.id]
        assert [x.id for x in (await agents.list(has_verifiers="true")).data] == [c.id]
        assert [x.id for x in (await agents.list(has_verifiers="false")).data] == [b.id, a.id]
        with pytest.raises(ValidationError):
            await agents.list(has_verifiers="maybe")

    async def test_other_issuer_agents_not_listed(self, admin: AuthPIAdmin, issuer_id: str,
                                                  second_issuer_id: str):
        await admin.issuer(issuer_id).agents.create(AGENT_BODY)
        assert (await admin.issuer(second_issuer_id).agents.list()).data == []


class TestUpdateAgent:
    async def test_patch_changes_given_fields(self, admin: AuthPIAdmin, account: AccountCredentials,
                                              issuer_id: str, pg: asyncpg.Pool):
        agent = await admin.issuer(issuer_id).agents.create(AGENT_BODY)
        updated = await admin.issuer(issuer_id).agents.update(
            agent.id, {"description": "pays invoices", "scopes": ["invoices:*"]}, if_match=agent._etag)
        assert (updated.description, updated.scopes, updated.model) == ("pays invoices", ["invoices:*"],
                                                                         "gpt-4o")
        assert updated.updated_at > agent.created_at
        assert await admin.issuer(issuer_id).agent(agent.id).get() == updated
        event = await last_event(pg, account.account_id, "agent.updated")
        assert json.loads(event["data"]) == {"changed": ["description", "scopes"]}

    async def test_suspend_records_status(self, admin: AuthPIAdmin, issuer_id: str):
        agent = await admin.issuer(issuer_id).agents.create(AGENT_BODY)
        got = await admin.issuer(issuer_id).agent(agent.id).update(
            {"status": "suspended", "status_reason": "leaked"})
        assert (got.status, got.status_reason) == ("suspended", "leaked")
        assert got.status_at is not None

    async def test_stale_if_match_is_412(self, admin: AuthPIAdmin, issuer_id: str):
        agent = await admin.issuer(issuer_id).agents.create(AGENT_BODY)
        await admin.issuer(issuer_id).agents.update(agent.id, {"name": "renamed"})
        with pytest.raises(PreconditionFailedError):
            await admin.issuer(issuer_id).agents.update(agent.id, {"name": "again"}, if_match=agent._etag)

    @pytest.mark.parametrize("body", [{"status": "deleted"}, {"scopes": ["a b"]}, {"id": "agt_x"}])
    async def test_bad_patch_writes_nothing(self, client: httpx.AsyncClient, admin: AuthPIAdmin,
                                            account: AccountCredentials, issuer_id: str,
                                            pg: asyncpg.Pool, body: dict):
        agent = await admin.issuer(issuer_id).agents.create(AGENT_BODY)
        before = await count_rows(pg, "events", account.account_id)
        resp = await client.patch(f"{agents_path(account.account_id, issuer_id)}/{agent.id}", json=body,
                                  auth=account.basic)
        assert resp.status_code == 422, resp.text
        assert resp.json()["fields"]
        assert await count_rows(pg, "events", account.account_id) == before
        assert await admin.issuer(issuer_id).agents.get(agent.id) == agent


class TestDeleteAgent:
    async def test_soft_delete_then_404(self, admin: AuthPIAdmin, account: AccountCredentials,
                                        issuer_id: str, pg: asyncpg.Pool):
        agent = await admin.issuer(issuer_id).agents.create(AGENT_BODY)
        await admin.issuer(issuer_id).agent(agent.id).verifiers.create({"type": "secret"})
        await admin.issuer(issuer_id).agents.delete(agent.id)
        assert await pg.fetchval("SELECT status FROM agents WHERE id = $1", agent.id) == "deleted"
        assert await pg.fetchval("SELECT status FROM agent_verifiers WHERE agent_id = $1",
                                 agent.id) == "revoked"
        for call in (admin.issuer(issuer_id).agents.get(agent.id),
                     admin.issuer(issuer_id).agent(agent.id).verifiers.list(),
                     admin.issuer(issuer_id).agents.delete(agent.id)):
            with pytest.raises(NotFoundError):
                await call
        assert (await admin.issuer(issuer_id).agents.list()).data == []
        assert (await event_types(pg, account.account_id))[-3:] == [
            "agent.created", "agent.verifier.added", "agent.deleted"]

    async def test_stale_if_match_is_412(self, admin: AuthPIAdmin, issuer_id: str):
        agent = await admin.issuer(issuer_id).agents.create(AGENT_BODY)
        await admin.issuer(issuer_id).agents.update(agent.id, {"name": "renamed"})
        with pytest.raises(PreconditionFailedError):
            await admin.issuer(issuer_id).agent(agent.id).delete(if_match=agent._etag)


class TestAgentVerifiers:
    async def test_secret_shown_once_and_hashed(self, admin: AuthPIAdmin, account: AccountCredentials,
                                                issuer_id: str, pg: asyncpg.Pool):
        agent = await admin.issuer(issuer_id).agents.create(AGENT_BODY)
        scope = admin.issuer(issuer_id).agent(agent.id)
        created = await scope.verifiers.create({"type": "secret", "name": "primary"})
        assert isinstance(created, AgentVerifiersCreateResponse)
        assert (created.agent_id, created.type, created.status, created.name) == (
            agent.id, "secret", "active", "primary")
        assert created.secret
        assert len(created.secret) > 40
        assert created.credential == {"hint": created.secret[-4:]}
        stored = await pg.fetchval("SELECT secret_hash FROM agent_verifiers WHERE id = $1", created.id)
        assert stored.startswith("$argon2id$")
        listed = await scope.verifiers.list()
        assert [type(v) for v in listed.data] == [AgentVerifiersListItem]
        assert listed.data[0].id == created.id
        assert not listed.has_more
        assert created.secret not in json.dumps([v.model_dump() for v in listed.data])
        events = await pg.fetch("SELECT data::text AS d FROM events WHERE account_id = $1",
                                account.account_id)
        assert all(created.secret not in e["d"] for e in events)
        event = await last_event(pg, account.account_id, "agent.verifier.added")
        assert json.loads(event["data"]) == {"verifier_id": created.id, "type": "secret"}

    async def test_wallet_verifier(self, admin: AuthPIAdmin, issuer_id: str):
        agent = await admin.issuer(issuer_id).agents.create(AGENT_BODY)
        scope = admin.issuer(issuer_id).agent(agent.id)
        created = await scope.verifiers.create({"type": "wallet", "address": WALLET})
        assert created.secret is None
        assert created.credential == {"address": WALLET, "chain_id": "eip155:1"}
        with pytest.raises(ConflictError):
            await scope.verifiers.create({"type": "wallet", "address": WALLET})

    @pytest.mark.parametrize("body", [
        {}, {"type": "password"}, {"type": "wallet"}, {"type": "wallet", "address": "0xabc"},
        {"type": "wallet", "address": "eip155:1:0x ab"}, {"type": "secret", "address": WALLET},
        {"type": "secret", "secret": "mine"}, {"type": "wallet", "address": "E:1:0xab"},
    ])
    async def test_bad_verifier_is_422_and_writes_nothing(self, client: httpx.AsyncClient, admin: AuthPIAdmin,
                                                          account: AccountCredentials, issuer_id: str,
                                                          pg: asyncpg.Pool, body: dict):
        agent = await admin.issuer(issuer_id).agents.create(AGENT_BODY)
        before = await count_rows(pg, "events", account.account_id)
        resp = await client.post(f"{agents_path(account.account_id, issuer_id)}/{agent.id}/verifiers",
                                 json=body, auth=account.basic)
        assert resp.status_code == 422, resp.text
        assert resp.json()["fields"]
        assert await count_rows(pg, "agent_verifiers", account.account_id) == 0
        assert await count_rows(pg, "events", account.account_id) == before

    async def test_at_most_20_per_agent(self, admin: AuthPIAdmin, issuer_id: str):
        agent = await admin.issuer(issuer_id).agents.create(AGENT_BODY)
        scope = admin.issuer(issuer_id).agent(agent.id)
        for i in range(20):
            await scope.verifiers.create({"type": "wallet", "address": f"eip155:1:0x{i:040x}"})
        with pytest.raises(ConflictError):
            await scope.verifiers.create({"type": "wallet", "address": "eip155:1:0xfff"})
        first = (await scope.verifiers.list()).data[0]
        await scope.verifiers.delete(first.id)
        await scope.verifiers.create({"type": "wallet", "address": "eip155:1:0xfff"})

    async def test_delete_verifier(self, admin: AuthPIAdmin, account: AccountCredentials, issuer_id: str,
                                   pg: asyncpg.Pool):
        agent = await admin.issuer(issuer_id).agents.create(AGENT_BODY)
        scope = admin.issuer(issuer_id).agent(agent.id)
        created = await scope.verifiers.create({"type": "secret"})
        await scope.verifiers.delete(created.id)
        assert (await scope.verifiers.list()).data == []
        with pytest.raises(NotFoundError):
            await scope.verifiers.delete(created.id)
        event = await last_event(pg, account.account_id, "agent.verifier.removed")
        assert json.loads(event["data"]) == {"verifier_id": created.id, "type": "secret"}


class TestAuthenticateAgent:
    async def test_secret_authenticates_only_active_agent(self, app: FastAPI, admin: AuthPIAdmin,
                                                          issuer_id: str, second_issuer_id: str):
        agent = await admin.issuer(issuer_id).agents.create(AGENT_BODY)
        scope = admin.issuer(issuer_id).agent(agent.id)
        secret = (await scope.verifiers.create({"type": "secret"})).secret

        authenticator = app.state.agent_authenticator

        async def check(issuer: str, agent_id: str, value: str) -> str | None:
            found = await authenticator.verify(issuer, agent_id, value, "192.0.2.7")
            await authenticator.flush()  # the verifier's counted uses
            return found.agent_id if found else None

        assert await check(issuer_id, agent.id, secret) == agent.id
        assert await check(issuer_id, agent.id, secret + "x") is None
        assert await check(second_issuer_id, agent.id, secret) is None
        assert await check(issuer_id, "agt_01JUNKNOWN0000000000000000", secret) is None
        listed = (await scope.verifiers.list()).data[0]
        assert (listed.usage_count, listed.last_used_at is not None) == (1, True)
        await scope.update({"status": "suspended"})
        assert await check(issuer_id, agent.id, secret) is None
        await scope.update({"status": "active"})
        await scope.verifiers.delete(listed.id)
        assert await check(issuer_id, agent.id, secret) is None


class TestAgentIsolation:
    async def test_other_account_gets_404_on_every_route(self, admin: AuthPIAdmin, client: httpx.AsyncClient,
                                                         account: AccountCredentials,
                                                         other_account: AccountCredentials, issuer_id: str):
        agent = await admin.issuer(issuer_id).agents.create(AGENT_BODY)
        verifier = await admin.issuer(issuer_id).agent(agent.id).verifiers.create({"type": "secret"})
        for acc in (account.account_id, other_account.account_id):
            base = agents_path(acc, issuer_id)
            for method, path, body in [
                ("GET", base, None), ("POST", base, AGENT_BODY), ("GET", f"{base}/{agent.id}", None),
                ("PATCH", f"{base}/{agent.id}", {"name": "x"}), ("DELETE", f"{base}/{agent.id}", None),
                ("GET", f"{base}/{agent.id}/verifiers", None),
                ("POST", f"{base}/{agent.id}/verifiers", {"type": "secret"}),
                ("DELETE", f"{base}/{agent.id}/verifiers/{verifier.id}", None),
            ]:
                resp = await client.request(method, path, json=body, auth=other_account.basic)
                assert resp.status_code == 404, (method, path, resp.text)
        assert (await admin.issuer(issuer_id).agents.get(agent.id)) == agent

    async def test_agent_of_issuer_x_is_404_under_issuer_y(self, admin: AuthPIAdmin, issuer_id: str,
                                                           second_issuer_id: str):
        agent = await admin.issuer(issuer_id).agents.create(AGENT_BODY)
        other = admin.issuer(second_issuer_id)
        for call in (other.agents.get(agent.id), other.agents.update(agent.id, {"name": "x"}),
                     other.agents.delete(agent.id), other.agent(agent.id).verifiers.list(),
                     other.agent(agent.id).verifiers.create({"type": "secret"})):
            with pytest.raises(NotFoundError):
                await call


class TestAgentScopes:
    async def test_read_scope_cannot_write(self, admin: AuthPIAdmin, client: httpx.AsyncClient,
                                           account: AccountCredentials, issuer_id: str):
        key = await admin.api_keys.create({"name": "ro", "restrictions": {"scopes": ["issuers.agents:read"]}})
        basic = (key.id, key.secret_plain)
        base = agents_path(account.account_id, issuer_id)
        assert (await client.get(base, auth=basic)).status_code == 200
        assert (await client.post(base, json=AGENT_BODY, auth=basic)).status_code == 403


class TestIdempotentCreate:
    async def test_same_key_replays_without_a_second_row(self, admin: AuthPIAdmin,
                                                         account: AccountCredentials, issuer_id: str,
                                                         pg: asyncpg.Pool):
        first = await admin.issuer(issuer_id).agents.create(AGENT_BODY, idempotency_key="agent-create-1")
        again = await admin.issuer(issuer_id).agents.create(AGENT_BODY, idempotency_key="agent-create-1")
        assert again.id == first.id
        assert await count_rows(pg, "agents", account.account_id) == 1
