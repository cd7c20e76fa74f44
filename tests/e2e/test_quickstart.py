"""The seed quickstart (shared/contract/QUICKSTART.txt), verbatim through the official SDK against a
live server, only base_url differing."""

from __future__ import annotations

import httpx
import pytest
from authpi_admin import AuthPIAdmin
from authpi_admin.errors import ValidationError
from fastapi import FastAPI

from tests.conftest import count_rows, new_account
from tests.fixtures.server import LiveServer


@pytest.fixture
async def live_admin(app: FastAPI, live_server: LiveServer):
    creds = await new_account(app, "quickstart")
    async with AuthPIAdmin(api_key=creds.basic, base_url=live_server.url) as admin:
        yield admin, creds


class TestQuickstart:
    async def test_all_six_steps(self, live_admin, live_server: LiveServer, pg):
        admin, creds = live_admin

        # 1. Create your issuer; its OIDC runtime is live at once.
        issuer = await admin.issuers.create({"name": "acme-prod"})
        assert issuer.id.startswith("i_")
        async with httpx.AsyncClient(base_url=live_server.url) as http:
            discovery = (await http.get(f"/{issuer.id}/.well-known/openid-configuration")).json()
            assert discovery["issuer"] == f"{live_server.url}/{issuer.id}"
            jwks = (await http.get(discovery["jwks_uri"].replace(live_server.url, ""))).json()
            assert jwks["keys"]
            assert any(k["alg"] == "RS256" for k in jwks["keys"])

        # 2. Configure a client; the secret only on create.
        client = await admin.issuer(issuer.id).clients.create({
            "name": "acme-web",
            "type": "external",
            "confidential": True,
            "settings": {
                "protocol": "oidc",
                "scopes": ["openid", "profile"],
                "openid": {
                    "application_type": "web",
                    "grant_types": ["authorization_code", "refresh_token"],
                    "redirect_uris": ["http://localhost:3000/api/auth/callback"],
                },
            },
        })
        assert client.id.startswith("c_")
        assert client.secret
        fetched = await admin.issuer(issuer.id).clients.get(client.id)
        assert "secret" not in fetched.model_dump(exclude_none=True)

        # 3. Create an organization.
        org = await admin.issuer(issuer.id).organizations.create({"name": "Globex Corp"})
        assert org.id.startswith("org_")

        # 4. Add a user with scoped membership; deny-by-default refuses an empty one.
        user = await admin.issuer(issuer.id).users.create({
            "username_type": "email",
            "username": "ada@globex.example",
            "profile": {"first_name": "Ada", "last_name": "Lovelace"},
        })
        await admin.issuer(issuer.id).organization(org.id).members.create({
            "member_id": user.id,
            "scopes": ["invoices:read", "invoices:write"],
        })
        # 5. Mint and verify an organization API key.
        key = await admin.issuer(issuer.id).organization(org.id).api_keys.create({
            "type": "api_key",
            "name": "globex-backend",
            "restrictions": {"scopes": ["invoices:read"]},
        })
        async with AuthPIAdmin(api_key=(key.id, key.secret_plain), base_url=live_server.url) as caller:
            who = await caller.whoami()
        assert who["type"] == "api_key"
        assert who["organizations"][0]["org_id"] == org.id
        assert who["organizations"][0]["scopes"] == ["invoices:read"]

        # 6. Read the identity event trail.
        await _wait_for_verified_events(admin, 1)
        page = await admin.events.list(limit=20)
        assert [e.type for e in page.data] == [
            "api-key.verified",
            "api-key.created",
            "organization.membership.created",
            "user.created",
            "organization.created",
            "client.created",
            "issuer.created",
            # the SDK resolving the account id: GET /v1/me with the account key
            "api-key.verified",
            # console onboarding (authpi account create)
            "api-key.created",
            "account.created",
        ]
        assert page.data[0].subject["id"] == key.id

        # The same key through curl-style raw HTTP; a wrong secret is 401.
        async with httpx.AsyncClient(base_url=live_server.url) as http:
            raw = await http.get("/v1/me", auth=(key.id, key.secret_plain))
            assert raw.status_code == 200
            assert raw.json()["data"]["organizations"] == [{"org_id": org.id, "scopes": ["invoices:read"]}]
            wrong = await http.get("/v1/me", auth=(key.id, "not-the-secret"))
            assert wrong.status_code == 401

    async def test_empty_scope_membership_is_refused_and_writes_nothing(self, live_admin, pg):
        admin, creds = live_admin
        issuer = await admin.issuers.create({"name": "acme-prod"})
        org = await admin.issuer(issuer.id).organizations.create({"name": "Globex Corp"})
        user = await admin.issuer(issuer.id).users.create({
            "username_type": "email", "username": "ada@globex.example", "profile": {}})
        members_before = await count_rows(pg, "memberships", creds.account_id)
        events_before = await count_rows(pg, "events", creds.account_id)
        with pytest.raises(ValidationError) as refused:
            await admin.issuer(issuer.id).organization(org.id).members.create(
                {"member_id": user.id, "scopes": []})
        assert refused.value.fields
        assert await count_rows(pg, "memberships", creds.account_id) == members_before
        assert await count_rows(pg, "events", creds.account_id) == events_before


async def _wait_for_verified_events(admin: AuthPIAdmin, n: int) -> None:
    """api-key.verified is metered through a batcher flushed at least every second."""
    import asyncio

    for _ in range(50):
        page = await admin.events.list(event_types="api-key.verified")
        if len(page.data) >= n:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("api-key.verified events did not reach the trail within 5 s")
