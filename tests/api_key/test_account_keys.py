"""Account API keys through the official SDK (SDK-CONTRACT §2.2)."""

from __future__ import annotations

import asyncpg
import pytest
from authpi_admin import AuthPIAdmin
from authpi_admin.errors import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    PreconditionFailedError,
    ValidationError,
)
from fastapi import FastAPI

from tests.api_key.conftest import sdk_for
from tests.conftest import AccountCredentials

BODY = {"name": "ci", "restrictions": {"scopes": ["issuers:read"]}}


async def trail(admin: AuthPIAdmin, key_id: str) -> list[str]:
    page = await admin.events.list(limit=50)
    return [e.type for e in page.data if (e.subject or {}).get("id") == key_id]


class TestCreateAccountKey:
    async def test_returns_secret_once_and_records_event(self, app: FastAPI, admin: AuthPIAdmin,
                                                         account: AccountCredentials, pg: asyncpg.Pool):
        key = await admin.api_keys.create({**BODY, "description": "d", "tags": ["ci"], "metadata": {"a": 1}})
        assert key.secret_plain
        assert key.secret["algorithm"] == "argon2id"
        assert key.issuer_id == "i_authpi"
        assert key.status == "active"
        assert key._etag == f'"{key.created_at}"'
        async with sdk_for(app, (key.id, key.secret_plain)) as caller:
            who = await caller.whoami()
        assert who["accounts"] == [{"account_id": account.account_id, "org_id": key.org_id,
                                    "scopes": ["issuers:read"]}]
        assert await trail(admin, key.id) == ["api-key.verified", "api-key.created"]
        row = await pg.fetchrow("SELECT owner_kind FROM api_keys WHERE id = $1", key.id)
        assert row["owner_kind"] == "account"

    async def test_imported_secret_works(self, app: FastAPI, admin: AuthPIAdmin):
        secret = "imported-secret-" + "x" * 32
        key = await admin.api_keys.create({**BODY, "secret": secret, "secret_hint": "ignored"})
        assert key.secret_plain == secret
        async with sdk_for(app, (key.id, secret)) as caller:
            assert (await caller.whoami())["key_id"] == key.id

    async def test_cannot_grant_more_than_the_caller_holds(self, app: FastAPI, admin: AuthPIAdmin):
        narrow = await admin.api_keys.create({"name": "n", "restrictions": {"scopes": ["api_keys:write"]}})
        async with sdk_for(app, (narrow.id, narrow.secret_plain)) as caller:
            with pytest.raises(ValidationError) as err:
                await caller.api_keys.create({"name": "x", "restrictions": {"scopes": ["*:**"]}})
            assert err.value.fields[0]["field"] == "restrictions.scopes"
            ok = await caller.api_keys.create({"name": "x", "restrictions": {"scopes": ["api_keys:write"]}})
            assert ok.secret_plain

    async def test_needs_api_keys_write(self, app: FastAPI, admin: AuthPIAdmin):
        ro = await admin.api_keys.create({"name": "ro", "restrictions": {"scopes": ["api_keys:read"]}})
        async with sdk_for(app, (ro.id, ro.secret_plain)) as caller:
            with pytest.raises(ForbiddenError):
                await caller.api_keys.create(BODY)
            assert (await caller.api_keys.get(ro.id)).id == ro.id

    async def test_short_imported_secret_is_422(self, admin: AuthPIAdmin):
        with pytest.raises(ValidationError):
            await admin.api_keys.create({**BODY, "secret": "short"})


class TestListAccountKeys:
    async def test_lists_account_keys_only(self, admin: AuthPIAdmin, account: AccountCredentials):
        key = await admin.api_keys.create(BODY)
        page = await admin.api_keys.list()
        assert [k.id for k in page.data] == [key.id, account.key_id]
        assert page.data[0].scopes == ["issuers:read"]
        assert page.data[0].secret_hint == key.secret_plain[-4:]
        assert [k.id for k in (await admin.api_keys.list(q="ci")).data] == [key.id]


class TestGetAccountKey:
    async def test_never_returns_secret_or_hash(self, admin: AuthPIAdmin):
        key = await admin.api_keys.create(BODY)
        raw = await admin._http.request("GET", f"/v1/accounts/{{account_id}}/api-keys/{key.id}")
        text = str(raw.data)
        assert key.secret_plain not in text
        assert "argon2id$" not in text
        assert "hash" not in text

    async def test_unknown_is_404(self, admin: AuthPIAdmin):
        with pytest.raises(NotFoundError):
            await admin.api_keys.get("key_01jzzzzzzzzzzzzzzzzzzzzzzz")


class TestUpdateAccountKey:
    async def test_updates_fields_and_records_event(self, admin: AuthPIAdmin):
        key = await admin.api_keys.create(BODY)
        got = await admin.api_keys.update(key.id, {"name": "renamed", "tags": ["t"], "expires_at": None,
                                                   "restrictions": {"scopes": ["events:read"]}})
        assert got.name == "renamed"
        assert got.restrictions == {"scopes": ["events:read"]}
        assert got.updated_at
        assert got._etag == f'"{got.updated_at}"'
        assert (await trail(admin, key.id))[0] == "api-key.updated"

    async def test_status_through_update(self, admin: AuthPIAdmin):
        key = await admin.api_keys.create(BODY)
        got = await admin.api_keys.update(key.id, {"status": "blocked", "status_reason": "leak"})
        assert got.status == "blocked"
        assert got.status_reason == "leak"
        assert (await trail(admin, key.id))[0] == "api-key.blocked"

    async def test_stale_if_match_is_412(self, admin: AuthPIAdmin):
        key = await admin.api_keys.create(BODY)
        with pytest.raises(PreconditionFailedError) as err:
            await admin.api_keys.update(key.id, {"name": "x"}, if_match='"1"')
        assert err.value.current_etag == f'"{key.created_at}"'
        ok = await admin.api_keys.update(key.id, {"name": "x"}, if_match=key._etag)
        assert ok.name == "x"

    async def test_invalid_is_422(self, admin: AuthPIAdmin):
        key = await admin.api_keys.create(BODY)
        with pytest.raises(ValidationError):
            await admin.api_keys.update(key.id, {"status": "expired"})
        with pytest.raises(ValidationError):
            await admin.api_keys.update(key.id, {"name": None})


class TestBlockUnblockRevoke:
    async def test_block_then_unblock(self, admin: AuthPIAdmin):
        key = await admin.api_keys.create(BODY)
        blocked = await admin.api_keys.block(key.id, {"status_reason": "suspicious"})
        assert blocked.status == "blocked"
        assert blocked.status_reason == "suspicious"
        assert blocked.status_at
        assert (await admin.api_keys.unblock(key.id)).status == "active"
        assert (await trail(admin, key.id))[:2] == ["api-key.unblocked", "api-key.blocked"]

    async def test_revoke_is_final(self, admin: AuthPIAdmin):
        key = await admin.api_keys.create(BODY)
        assert (await admin.api_keys.revoke(key.id)).status == "revoked"
        for call in (admin.api_keys.unblock(key.id), admin.api_keys.block(key.id),
                     admin.api_keys.rotate(key.id), admin.api_keys.update(key.id, {"status": "active"})):
            with pytest.raises(ConflictError):
                await call
        assert (await trail(admin, key.id))[0] == "api-key.revoked"

    async def test_actions_without_body(self, admin: AuthPIAdmin):
        key = await admin.api_keys.create(BODY)
        assert (await admin.api_keys.block(key.id)).status == "blocked"
        assert (await admin.api_keys.revoke(key.id)).status == "revoked"


class TestRotateAccountKey:
    async def test_new_secret_once(self, app: FastAPI, admin: AuthPIAdmin):
        key = await admin.api_keys.create(BODY)
        rotated = await admin.api_keys.rotate(key.id)
        assert rotated.secret_plain != key.secret_plain
        got = await admin.api_keys.get(key.id)
        assert got.secret["hint"] == rotated.secret_plain[-4:]
        assert (await trail(admin, key.id))[0] == "api-key.rotated"

    async def test_grace_period_out_of_range_is_422(self, admin: AuthPIAdmin):
        key = await admin.api_keys.create(BODY)
        with pytest.raises(ValidationError):
            await admin.api_keys.rotate(key.id, {"grace_period_seconds": -1})


class TestDeleteAccountKey:
    async def test_real_delete(self, admin: AuthPIAdmin, pg: asyncpg.Pool):
        key = await admin.api_keys.create(BODY)
        await admin.api_keys.delete(key.id)
        assert await pg.fetchval("SELECT count(*) FROM api_keys WHERE id = $1", key.id) == 0
        with pytest.raises(NotFoundError):
            await admin.api_keys.get(key.id)
        assert (await trail(admin, key.id))[0] == "api-key.deleted"


class TestAccountKeyIsolation:
    async def test_other_account_gets_404_on_every_route(self, admin: AuthPIAdmin, other_admin: AuthPIAdmin,
                                                         account: AccountCredentials):
        key = await admin.api_keys.create(BODY)
        acc = account.account_id
        http = other_admin._http
        for method, path in (("GET", f"/v1/accounts/{acc}/api-keys"),
                             ("POST", f"/v1/accounts/{acc}/api-keys"),
                             ("GET", f"/v1/accounts/{acc}/api-keys/{key.id}"),
                             ("PATCH", f"/v1/accounts/{acc}/api-keys/{key.id}"),
                             ("DELETE", f"/v1/accounts/{acc}/api-keys/{key.id}"),
                             *[("POST", f"/v1/accounts/{acc}/api-keys/{key.id}/{a}")
                               for a in ("block", "unblock", "revoke", "rotate")]):
            with pytest.raises(NotFoundError):
                await http.request(method, path, body=BODY if method in ("POST", "PATCH") else None)
        # The key itself is untouched.
        assert (await admin.api_keys.get(key.id)).status == "active"
