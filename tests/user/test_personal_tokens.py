"""Personal access tokens: create (secret once), list, get, revoke, delete, and Bearer verification."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
from authpi_admin import AuthPIAdmin
from authpi_admin.errors import NotFoundError, PreconditionFailedError, ValidationError
from authpi_admin.generated.models import PersonalToken, UserTokensCreateResponse, UserTokensListItem
from fastapi import FastAPI

from app.core.ids import now_ms
from app.user.tokens import verify_personal_token
from tests.conftest import AccountCredentials
from tests.fixtures.tenancy import counts, event_types

ADA = {"username_type": "email", "username": "ada@globex.example", "profile": {"first_name": "Ada"}}


async def verify(app: FastAPI, token: str):  # noqa: ANN201
    async with app.state.db.unit_of_work() as session:
        return await verify_personal_token(session, token, server_key=app.state.secret_key)


class TestCreateAndListTokens:
    async def test_create_shows_secret_once(self, admin: AuthPIAdmin, account: AccountCredentials,
                                            issuer_id: str, pg: asyncpg.Pool):
        user = await admin.issuer(issuer_id).users.create(ADA)
        pats = admin.issuer(issuer_id).user(user.id).tokens
        created = await pats.create({"name": "cli", "scopes": ["invoices:read"], "tags": ["dev"]})
        assert isinstance(created, UserTokensCreateResponse)
        assert created.token_plain.startswith("tok_")
        page = await pats.list()
        assert all(isinstance(t, UserTokensListItem) for t in page.data)
        [item] = page.data
        assert (item.name, item.scopes, item.tags, item.status) == ("cli", ["invoices:read"], ["dev"],
                                                                    "active")
        got = await admin.tokens.get(item.id)
        assert isinstance(got, PersonalToken)
        assert got.restrictions == {"scopes": ["invoices:read"]}
        secret = created.token_plain.split(".", 1)[1]
        assert secret not in str(got.model_dump())
        assert secret not in await pg.fetchval("SELECT secret_hash FROM personal_tokens WHERE id = $1",
                                               item.id)
        events = await pg.fetch("SELECT data::text AS d FROM events WHERE account_id = $1",
                                account.account_id)
        assert all(secret not in e["d"] for e in events)
        assert "user.personal-token.created" in await event_types(pg, account.account_id)

    @pytest.mark.parametrize("body", [{}, {"name": ""}, {"name": "t", "scopes": ["invoices"]},
                                      {"name": "t", "expires_at": 5}, {"name": "t", "tags": "x"},
                                      {"name": "t", "restrictions": {"scopes": ["a b:c"]}},
                                      {"name": "t", "secret": "mine"}])
    async def test_bad_input_writes_nothing(self, client: httpx.AsyncClient, admin: AuthPIAdmin,
                                            account: AccountCredentials, issuer_id: str,
                                            pg: asyncpg.Pool, body: dict):
        user = await admin.issuer(issuer_id).users.create(ADA)
        before = await counts(pg, account.account_id, "personal_tokens")
        resp = await client.post(
            f"/v1/accounts/{account.account_id}/issuers/{issuer_id}/users/{user.id}/tokens",
            json=body, auth=account.basic)
        assert resp.status_code == 422, resp.text
        assert resp.json()["fields"]
        assert await counts(pg, account.account_id, "personal_tokens") == before


class TestRevokeAndDeleteTokens:
    async def test_revoke_then_delete(self, app: FastAPI, admin: AuthPIAdmin, issuer_id: str,
                                      client: httpx.AsyncClient, account: AccountCredentials):
        user = await admin.issuer(issuer_id).users.create(ADA)
        created = await admin.issuer(issuer_id).user(user.id).tokens.create({"name": "cli"})
        token_id = created.token_plain.split(".", 1)[0]
        assert (await verify(app, created.token_plain)).user_id == user.id
        current = await admin.tokens.get(token_id)
        with pytest.raises(PreconditionFailedError):
            await admin.tokens.revoke(token_id, if_match='"1"')
        # No body at all, as the SDK sends it without one.
        resp = await client.post(f"/v1/accounts/{account.account_id}/tokens/{token_id}/revoke",
                                 auth=account.basic, headers={"if-match": current._etag})
        assert resp.status_code == 200
        assert resp.json()["data"]["status"] == "revoked"
        assert await verify(app, created.token_plain) is None
        revoked = await admin.tokens.revoke(token_id, {"status_reason": "leaked"})
        assert revoked.status == "revoked"
        await admin.tokens.delete(token_id)
        with pytest.raises(NotFoundError):
            await admin.tokens.get(token_id)
        with pytest.raises(ValidationError):
            await admin.tokens.revoke(token_id, {"unknown": 1})


class TestVerifyPersonalToken:
    async def test_valid_wrong_expired_blocked(self, app: FastAPI, admin: AuthPIAdmin,
                                               account: AccountCredentials, issuer_id: str,
                                               pg: asyncpg.Pool):
        scope = admin.issuer(issuer_id)
        user = await scope.users.create(ADA)
        org = await scope.organizations.create({"name": "Globex Corp"})
        await scope.organization(org.id).members.create(
            {"member_id": user.id, "scopes": ["invoices:read", "invoices:write", "reports:read"]})
        created = await scope.user(user.id).tokens.create({"name": "cli",
                                                           "restrictions": {"scopes": ["invoices:*"]}})
        principal = await verify(app, created.token_plain)
        assert (principal.type, principal.account_id, principal.issuer_id, principal.account_level) == (
            "personal_token", account.account_id, issuer_id, False)
        assert principal.scopes == ("invoices:*",)
        assert principal.extra["organizations"] == [
            {"org_id": org.id, "scopes": ["invoices:read", "invoices:write"]}]
        token_id, secret = created.token_plain.split(".", 1)
        for bad in (f"{token_id}.{secret}x", f"{token_id}.", token_id, "tok_01jzzzzzzzzzzzzzzzzzzzzzzz.x",
                    "garbage", f"{token_id}.{secret}" + "x" * 600):
            assert await verify(app, bad) is None, bad
        await scope.users.update(user.id, {"status": "blocked"})
        assert await verify(app, created.token_plain) is None
        await scope.users.update(user.id, {"status": "active"})
        await pg.execute("UPDATE personal_tokens SET expires_at = $1 WHERE id = $2", now_ms() - 1, token_id)
        assert await verify(app, created.token_plain) is None
        assert (await admin.tokens.get(token_id)).status == "expired"

    async def test_user_delete_removes_tokens(self, app: FastAPI, admin: AuthPIAdmin, issuer_id: str):
        user = await admin.issuer(issuer_id).users.create(ADA)
        created = await admin.issuer(issuer_id).user(user.id).tokens.create({"name": "cli"})
        await admin.issuer(issuer_id).users.delete(user.id)
        assert await verify(app, created.token_plain) is None
        with pytest.raises(NotFoundError):
            await admin.tokens.get(created.token_plain.split(".", 1)[0])


class TestTokenIsolation:
    async def test_other_account_gets_404(self, admin: AuthPIAdmin, client: httpx.AsyncClient,
                                          account: AccountCredentials, other_account: AccountCredentials,
                                          issuer_id: str):
        user = await admin.issuer(issuer_id).users.create(ADA)
        created = await admin.issuer(issuer_id).user(user.id).tokens.create({"name": "cli"})
        token_id = created.token_plain.split(".", 1)[0]
        for acc in (account.account_id, other_account.account_id):
            user_base = f"/v1/accounts/{acc}/issuers/{issuer_id}/users/{user.id}/tokens"
            tok = f"/v1/accounts/{acc}/tokens/{token_id}"
            for method, path, body in [("GET", user_base, None), ("POST", user_base, {"name": "x"}),
                                       ("GET", tok, None), ("POST", f"{tok}/revoke", None),
                                       ("DELETE", tok, None)]:
                resp = await client.request(method, path, json=body, auth=other_account.basic)
                assert resp.status_code == 404, (method, path, resp.text)
        assert (await admin.tokens.get(token_id)).status == "active"


class TestBearerPersonalToken:
    async def test_v1_me_with_a_personal_token(self, admin: AuthPIAdmin, client: httpx.AsyncClient,
                                               account: AccountCredentials, issuer_id: str):
        scope = admin.issuer(issuer_id)
        user = await scope.users.create(ADA)
        org = await scope.organizations.create({"name": "Globex Corp"})
        await scope.organization(org.id).members.create({"member_id": user.id,
                                                         "scopes": ["invoices:read"]})
        created = await scope.user(user.id).tokens.create({"name": "cli"})
        me = await client.get("/v1/me", headers={"Authorization": f"Bearer {created.token_plain}"})
        assert me.status_code == 200, me.text
        data = me.json()["data"]
        assert (data["type"], data["user_id"], data["issuer_id"], data["accounts"]) == (
            "personal_token", user.id, issuer_id, [])
        assert data["organizations"] == [{"org_id": org.id, "scopes": ["invoices:read"]}]
        # A personal token is not an account credential: the admin API refuses it.
        resp = await client.get(f"/v1/accounts/{account.account_id}/issuers/{issuer_id}/users",
                                headers={"Authorization": f"Bearer {created.token_plain}"})
        assert resp.status_code == 403
        await admin.tokens.revoke(created.token_plain.split(".", 1)[0])
        again = await client.get("/v1/me", headers={"Authorization": f"Bearer {created.token_plain}"})
        assert again.status_code == 401
        assert again.json()["error"] == "unauthorized"
        wrong = await client.get("/v1/me", headers={"Authorization": "Bearer tok_nope.nope"})
        assert wrong.status_code == 401
