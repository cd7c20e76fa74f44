"""Organization groups through the official SDK and raw HTTP: CRUD, scopes, members, isolation."""

from __future__ import annotations

import json

import asyncpg
import httpx
import pytest
from authpi_admin import AuthPIAdmin
from authpi_admin.errors import NotFoundError, PreconditionFailedError, ValidationError
from authpi_admin.generated.models import Group

from tests.conftest import AccountCredentials
from tests.fixtures.tenancy import counts, last_event


def groups_path(account_id: str, issuer_id: str, org_id: str) -> str:
    return f"/v1/accounts/{account_id}/issuers/{issuer_id}/organizations/{org_id}/groups"


async def new_org(admin: AuthPIAdmin, issuer_id: str, **body: object) -> str:
    return (await admin.issuer(issuer_id).organizations.create({"name": "Globex Corp", **body})).id


class TestCreateGroup:
    async def test_create_records_event(self, admin: AuthPIAdmin, account: AccountCredentials,
                                        issuer_id: str, pg: asyncpg.Pool):
        org_id = await new_org(admin, issuer_id)
        group = await admin.issuer(issuer_id).organization(org_id).groups.create(
            {"name": "billing", "scopes": ["invoices:read", "invoices:write"], "metadata": {"k": "v"}})
        assert isinstance(group, Group)
        assert group.id.startswith("grp_")
        assert (group.org_id, group.issuer_id, group.description) == (org_id, issuer_id, None)
        assert group.scopes == ["invoices:read", "invoices:write"]
        row = await pg.fetchrow("SELECT * FROM groups WHERE id = $1", group.id)
        assert row["account_id"] == account.account_id
        event = await last_event(pg, account.account_id, "organization.group.created")
        assert event["org_id"] == org_id
        assert json.loads(event["subject"]) == {"type": "group", "id": group.id}

    @pytest.mark.parametrize("body", [
        {}, {"name": ""}, {"name": None}, {"name": "x" * 201}, {"name": "g", "scopes": ["invoices"]},
        {"name": "g", "scopes": [":x"]}, {"name": "g", "scopes": ["a b:c"]}, {"name": "g", "extra": 1},
        {"name": "g", "description": "d" * 2001}, {"name": ["g"]},
    ])
    async def test_bad_input_is_422_and_writes_nothing(self, client: httpx.AsyncClient, admin: AuthPIAdmin,
                                                        account: AccountCredentials, issuer_id: str,
                                                        pg: asyncpg.Pool, body: dict):
        org_id = await new_org(admin, issuer_id)
        before = await counts(pg, account.account_id, "groups")
        resp = await client.post(groups_path(account.account_id, issuer_id, org_id), json=body,
                                 auth=account.basic)
        assert resp.status_code == 422, resp.text
        assert resp.json()["fields"]
        assert await counts(pg, account.account_id, "groups") == before

    async def test_scopes_within_org(self, admin: AuthPIAdmin, issuer_id: str):
        org_id = await new_org(admin, issuer_id, scopes=["invoices:*"])
        groups = admin.issuer(issuer_id).organization(org_id).groups
        with pytest.raises(ValidationError) as err:
            await groups.create({"name": "g", "scopes": ["payroll:read"]})
        assert err.value.fields[0]["field"] == "scopes"
        assert (await groups.create({"name": "g", "scopes": ["invoices:read"]})).scopes == [
            "invoices:read"]


class TestListAndGetGroups:
    async def test_list_pages_and_get(self, admin: AuthPIAdmin, issuer_id: str):
        org_id = await new_org(admin, issuer_id)
        groups = admin.issuer(issuer_id).organization(org_id).groups
        ids = [(await groups.create({"name": f"g{i}"})).id for i in range(3)]
        page = await groups.list(limit=2)
        assert [g.id for g in page.data] == ids[::-1][:2]
        assert [g.id async for g in groups.list_all(limit=2)] == ids[::-1]
        got = await groups.get(ids[0])
        assert got.name == "g0"
        assert got._etag == f'"{got.created_at}"'
        with pytest.raises(NotFoundError):
            await groups.get("grp_01jzzzzzzzzzzzzzzzzzzzzzzz")

    async def test_group_of_another_org_is_404(self, admin: AuthPIAdmin, issuer_id: str):
        a, b = await new_org(admin, issuer_id), await new_org(admin, issuer_id)
        group = await admin.issuer(issuer_id).organization(a).groups.create({"name": "g"})
        other = admin.issuer(issuer_id).organization(b).groups
        for call in (other.get(group.id), other.update(group.id, {"name": "x"}), other.delete(group.id)):
            with pytest.raises(NotFoundError):
                await call


class TestUpdateGroup:
    async def test_update_and_etag(self, admin: AuthPIAdmin, account: AccountCredentials,
                                   issuer_id: str, pg: asyncpg.Pool):
        org_id = await new_org(admin, issuer_id)
        groups = admin.issuer(issuer_id).organization(org_id).groups
        group = await groups.create({"name": "g", "description": "d"})
        updated = await groups.update(group.id, {"scopes": ["a:read"], "description": None},
                                      if_match=group._etag)
        assert (updated.name, updated.description, updated.scopes) == ("g", None, ["a:read"])
        event = await last_event(pg, account.account_id, "organization.group.updated")
        assert json.loads(event["data"]) == {"changed": ["description", "scopes"]}
        with pytest.raises(PreconditionFailedError):
            await groups.update(group.id, {"name": "h"}, if_match=group._etag)
        with pytest.raises(ValidationError):
            await groups.update(group.id, {"scopes": ["invoices"]})
        assert (await groups.get(group.id)).scopes == ["a:read"]


class TestDeleteGroup:
    async def test_delete_removes_it_from_memberships(self, admin: AuthPIAdmin,
                                                      account: AccountCredentials, issuer_id: str,
                                                      pg: asyncpg.Pool):
        org_id = await new_org(admin, issuer_id)
        scope = admin.issuer(issuer_id).organization(org_id)
        group = await scope.groups.create({"name": "g", "scopes": ["a:read"]})
        keep = await scope.groups.create({"name": "keep"})
        user = await admin.issuer(issuer_id).users.create(
            {"username_type": "email", "username": "ada@globex.example"})
        await scope.members.create({"member_id": user.id, "groups": [group.id, keep.id]})
        await scope.groups.delete(group.id)
        assert await pg.fetchval("SELECT count(*) FROM groups WHERE id = $1", group.id) == 0
        [member] = (await scope.members.list()).data
        assert member.groups == [keep.id]
        event = await last_event(pg, account.account_id, "organization.group.deleted")
        assert json.loads(event["data"])["members_updated"] == 1
        with pytest.raises(NotFoundError):
            await scope.groups.delete(group.id)

    async def test_member_with_only_groups_is_allowed(self, admin: AuthPIAdmin, issuer_id: str):
        org_id = await new_org(admin, issuer_id)
        scope = admin.issuer(issuer_id).organization(org_id)
        group = await scope.groups.create({"name": "g", "scopes": ["a:read"]})
        user = await admin.issuer(issuer_id).users.create(
            {"username_type": "email", "username": "ada@globex.example"})
        m = await scope.members.create({"member_id": user.id, "groups": [group.id]})
        assert (m.scopes, m.groups) == ([], [group.id])


class TestGroupIsolation:
    async def test_other_account_gets_404_on_every_route(
            self, admin: AuthPIAdmin, client: httpx.AsyncClient, account: AccountCredentials,
            other_account: AccountCredentials, issuer_id: str, pg: asyncpg.Pool):
        org_id = await new_org(admin, issuer_id)
        group = await admin.issuer(issuer_id).organization(org_id).groups.create({"name": "g"})
        before = await counts(pg, account.account_id, "groups")
        for acc in (account.account_id, other_account.account_id):
            base = groups_path(acc, issuer_id, org_id)
            for method, path, body in [
                ("GET", base, None), ("POST", base, {"name": "x"}), ("GET", f"{base}/{group.id}", None),
                ("PATCH", f"{base}/{group.id}", {"name": "x"}), ("DELETE", f"{base}/{group.id}", None),
            ]:
                resp = await client.request(method, path, json=body, auth=other_account.basic)
                assert resp.status_code == 404, (method, path, resp.text)
        assert await counts(pg, account.account_id, "groups") == before

    async def test_group_under_wrong_issuer_is_404(self, admin: AuthPIAdmin, issuer_id: str,
                                                    second_issuer_id: str):
        org_id = await new_org(admin, issuer_id)
        group = await admin.issuer(issuer_id).organization(org_id).groups.create({"name": "g"})
        with pytest.raises(NotFoundError):
            await admin.issuer(second_issuer_id).organization(org_id).groups.get(group.id)
