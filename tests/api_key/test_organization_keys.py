"""Organization API keys: create and list under {O}/api-keys (SDK-CONTRACT §2.17)."""

from __future__ import annotations

import asyncpg
import pytest
from authpi_admin import AuthPIAdmin
from authpi_admin.errors import ConflictError, NotFoundError, ValidationError
from fastapi import FastAPI

from tests.api_key.conftest import OrgRef, make_org, set_org
from tests.conftest import AccountCredentials


def org_keys(admin: AuthPIAdmin, org: OrgRef):  # noqa: ANN201 - the SDK's resource
    return admin.issuer(org.issuer_id).organization(org.org_id).api_keys


QUICKSTART_KEY = {"type": "api_key", "name": "globex-backend", "restrictions": {"scopes": ["invoices:read"]}}


class TestCreateOrganizationKey:
    async def test_quickstart_body_returns_the_secret_once(self, admin: AuthPIAdmin, org: OrgRef,
                                                           pg: asyncpg.Pool):
        key = await org_keys(admin, org).create(QUICKSTART_KEY)
        assert key.id.startswith("key_")
        assert key.secret_plain.startswith("sk_")
        assert key.org_id == org.org_id
        assert key.issuer_id == org.issuer_id
        assert key.restrictions == {"scopes": ["invoices:read"]}
        assert key.secret == {"algorithm": "argon2id", "hint": key.secret_plain[-4:]}
        row = await pg.fetchrow("SELECT owner_kind, secret_hash FROM api_keys WHERE id = $1", key.id)
        assert row["owner_kind"] == "organization"
        assert row["secret_hash"].startswith("$argon2id$")
        assert key.secret_plain not in row["secret_hash"]
        got = await admin.api_keys.get(key.id)
        assert not hasattr(got, "secret_plain")

    async def test_records_api_key_created(self, admin: AuthPIAdmin, org: OrgRef):
        key = await org_keys(admin, org).create(QUICKSTART_KEY)
        page = await admin.events.list(event_types="api-key.created", issuer_id=org.issuer_id)
        assert [e.subject["id"] for e in page.data] == [key.id]
        assert page.data[0].subject["org_id"] == org.org_id

    async def test_all_optional_fields(self, admin: AuthPIAdmin, org: OrgRef):
        body = {**QUICKSTART_KEY, "description": "d", "tags": ["a"], "metadata": {"team": "x"},
                "expires_at": 4102444800000,
                "restrictions": {"scopes": ["invoices:read"], "ip_allowlist": ["10.0.0.0/8", "::1"]}}
        key = await org_keys(admin, org).create(body)
        assert key.restrictions["ip_allowlist"] == ["10.0.0.0/8", "::1/128"]
        assert key.expires_at == 4102444800000
        assert key.tags == ["a"]

    @pytest.mark.parametrize(("body", "field"), [
        ({"name": "x", "restrictions": {"scopes": ["not a scope"]}}, "restrictions.scopes"),
        ({"name": "x", "restrictions": {"scopes": [], "ip_allowlist": ["nope"]}},
         "restrictions.ip_allowlist.0"),
        ({"name": "x", "restrictions": {}, "expires_at": 1000}, "expires_at"),
        ({"name": "x", "restrictions": {}, "type": "other"}, "type"),
        ({"restrictions": {}}, "name"),
        ({"name": "x", "restrictions": {}, "extra": 1}, "extra"),
    ])
    async def test_invalid_body_is_422_and_writes_nothing(self, admin: AuthPIAdmin, org: OrgRef,
                                                          pg: asyncpg.Pool, body: dict, field: str):
        with pytest.raises(ValidationError) as err:
            await org_keys(admin, org).create(body)
        assert any(f["field"].startswith(field) for f in err.value.fields)
        assert await pg.fetchval("SELECT count(*) FROM api_keys WHERE org_id = $1", org.org_id) == 0

    async def test_scopes_must_be_within_what_the_org_grants(self, app: FastAPI, admin: AuthPIAdmin,
                                                             account: AccountCredentials):
        org = await make_org(app, account.account_id, scopes=["invoices:**"])
        ok = await org_keys(admin, org).create({"name": "k", "restrictions": {"scopes": ["invoices:read"]}})
        assert ok.restrictions["scopes"] == ["invoices:read"]
        with pytest.raises(ValidationError) as err:
            await org_keys(admin, org).create({"name": "k", "restrictions": {"scopes": ["users:read"]}})
        assert err.value.fields[0]["field"] == "restrictions.scopes"

    async def test_suspended_org_is_409(self, app: FastAPI, admin: AuthPIAdmin, org: OrgRef):
        await set_org(app, org, status="suspended")
        with pytest.raises(ConflictError):
            await org_keys(admin, org).create(QUICKSTART_KEY)

    async def test_unknown_or_deleted_org_is_404(self, app: FastAPI, admin: AuthPIAdmin, org: OrgRef):
        with pytest.raises(NotFoundError):
            await admin.issuer(org.issuer_id).organization("org_01jzzzzzzzzzzzzzzzzzzzzzzz").api_keys.create(
                QUICKSTART_KEY)
        await set_org(app, org, status="deleted")
        with pytest.raises(NotFoundError):
            await org_keys(admin, org).create(QUICKSTART_KEY)

    async def test_org_of_another_issuer_is_404(self, app: FastAPI, admin: AuthPIAdmin,
                                                 account: AccountCredentials, org: OrgRef):
        other = await make_org(app, account.account_id)
        with pytest.raises(NotFoundError):
            await admin.issuer(other.issuer_id).organization(org.org_id).api_keys.create(QUICKSTART_KEY)


class TestListOrganizationKeys:
    async def test_lists_only_this_orgs_keys_newest_first(self, app: FastAPI, admin: AuthPIAdmin,
                                                          account: AccountCredentials, org: OrgRef):
        a = await org_keys(admin, org).create({**QUICKSTART_KEY, "name": "a"})
        b = await org_keys(admin, org).create({**QUICKSTART_KEY, "name": "b"})
        other = await make_org(app, account.account_id)
        await org_keys(admin, other).create(QUICKSTART_KEY)
        page = await org_keys(admin, org).list()
        assert [k.id for k in page.data] == [b.id, a.id]
        item = page.data[0]
        assert item.scopes == ["invoices:read"]
        assert item.secret_hint == b.secret_plain[-4:]
        assert item.status == "active"

    async def test_filters_and_pagination(self, admin: AuthPIAdmin, org: OrgRef):
        a = await org_keys(admin, org).create({"name": "alpha", "restrictions": {"scopes": ["x:read"]}})
        b = await org_keys(admin, org).create({"name": "beta", "restrictions": {"scopes": ["y:read"]}})
        await admin.api_keys.block(b.id)
        res = org_keys(admin, org)
        assert [k.id for k in (await res.list(q="alp")).data] == [a.id]
        assert [k.id for k in (await res.list(status="blocked")).data] == [b.id]
        assert [k.id for k in (await res.list(access="x:read")).data] == [a.id]
        assert [k.id for k in (await res.list(readiness="ready")).data] == [a.id]
        assert [k.id for k in (await res.list(readiness="unusable")).data] == [b.id]
        first = await res.list(limit=1)
        assert first.has_more
        assert [k.id for k in first.data] == [b.id]
        second = await res.list(limit=1, cursor=first.next_cursor)
        assert [k.id for k in second.data] == [a.id]
        assert not second.has_more
        with pytest.raises(ValidationError):
            await res.list(status="nonsense")


class TestOrganizationKeyIsolation:
    async def test_other_account_gets_404(self, admin: AuthPIAdmin, other_admin: AuthPIAdmin, org: OrgRef,
                                          other_account: AccountCredentials):
        key = await org_keys(admin, org).create(QUICKSTART_KEY)
        theirs = other_admin.issuer(org.issuer_id).organization(org.org_id).api_keys
        for call in (theirs.list(), theirs.create(QUICKSTART_KEY)):
            with pytest.raises(NotFoundError):
                await call
        # Through their own account path the ids simply do not exist.
        for call in (other_admin.api_keys.get(key.id), other_admin.api_keys.update(key.id, {"name": "x"}),
                     other_admin.api_keys.block(key.id), other_admin.api_keys.unblock(key.id),
                     other_admin.api_keys.revoke(key.id), other_admin.api_keys.rotate(key.id),
                     other_admin.api_keys.delete(key.id)):
            with pytest.raises(NotFoundError):
                await call
