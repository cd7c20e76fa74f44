"""The quickstart's steps through the SDK, with a webhook subscribed to every deliverable type: the
receiver gets each step's event, signed, and never api-key.verified."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import httpx
from authpi_admin import AuthPIAdmin
from fastapi import FastAPI

from app.events.catalog import WEBHOOK_EVENT_TYPES
from tests.conftest import AccountCredentials
from tests.webhooks.conftest import create_hook, eventually
from tests.webhooks.receiver import Receiver


class TestQuickstartDeliveries:
    async def test_each_step_is_delivered_and_verification_is_not(
            self, app: FastAPI, admin: AuthPIAdmin, client: httpx.AsyncClient, account: AccountCredentials,
            receiver: Receiver, path: str, pg: asyncpg.Pool) -> None:
        hook = await create_hook(admin, receiver, path, sorted(WEBHOOK_EVENT_TYPES))
        issuer = await admin.issuers.create({"name": "acme-prod"})
        await admin.issuer(issuer.id).clients.create({
            "name": "acme-web", "type": "external", "confidential": True,
            "settings": {"protocol": "oidc", "scopes": ["openid", "profile"],
                         "openid": {"application_type": "web",
                                    "grant_types": ["authorization_code", "refresh_token"],
                                    "redirect_uris": ["http://localhost:3000/api/auth/callback"]}},
        })
        org = await admin.issuer(issuer.id).organizations.create({"name": "Globex Corp"})
        user = await admin.issuer(issuer.id).users.create({
            "username_type": "email", "username": "ada@globex.example",
            "profile": {"first_name": "Ada", "last_name": "Lovelace"}})
        await admin.issuer(issuer.id).organization(org.id).members.create(
            {"member_id": user.id, "scopes": ["invoices:read", "invoices:write"]})
        key = await admin.issuer(issuer.id).organization(org.id).api_keys.create(
            {"type": "api_key", "name": "globex-backend", "restrictions": {"scopes": ["invoices:read"]}})
        me = await client.get("/v1/me", auth=(key.id, key.secret_plain))
        assert me.status_code == 200

        async def trail_verified() -> bool:
            return bool(await pg.fetchval("SELECT count(*) FROM events WHERE account_id = $1 "
                                          "AND type = 'api-key.verified' AND subject->>'id' = $2",
                                          account.account_id, key.id))

        assert await eventually(trail_verified)  # metered events may be batched
        # What the trail holds from the webhook's creation on (its own webhook.created included, as it
        # subscribes to it), deliverable ones only.
        rows = await pg.fetch("SELECT id, type, deliverable FROM events WHERE account_id = $1 AND id >= $2 "
                              "ORDER BY id", account.account_id,
                              (await pg.fetchval("SELECT min(id) FROM events WHERE account_id = $1 AND "
                                                 "type = 'webhook.created'", account.account_id)))
        expected = [r["id"] for r in rows if r["deliverable"]]
        steps = {"issuer.created", "client.created", "organization.created", "user.created",
                 "organization.membership.created", "api-key.created"}
        assert steps <= {r["type"] for r in rows if r["deliverable"]}
        got = await receiver.wait_for(path, len(expected))
        await asyncio.sleep(0.3)
        got = receiver.at(path)
        assert sorted(r.webhook_id for r in got) == sorted(expected)
        assert all(r.verified_with for r in got)
        assert "api-key.verified" not in {json.loads(r.body)["type"] for r in got}
        assert steps <= {json.loads(r.body)["type"] for r in got}
        deliveries = await admin.webhook(hook.id).deliveries.list(limit=100)
        assert {d.status for d in deliveries.data} == {"succeeded"}
