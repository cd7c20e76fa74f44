"""Organization members through the official SDK and raw HTTP, and the token `organizations` claim."""

from __future__ import annotations

import json

import asyncpg
import httpx
import pytest
from authpi_admin import AuthPIAdmin
from authpi_admin.errors import ConflictError, NotFoundError, PreconditionFailedError, ValidationError
from authpi_admin.generated.models import OrganizationMembership
from fastapi import FastAPI

from app.membership.service import organizations_claim
from tests.conftest import AccountCredentials
from tests.fixtures.tenancy import counts, last_event

ADA = {"username_type": "email", "username": "ada@globex.example",
       "profile": {"first_name": "Ada", "last_name": "Lovelace"}}


async def org_and_user(admin: AuthPIAdmin, issuer_id: str, **org: object) -> tuple[str, str]:
    o = await admin.issuer(issuer_id).organizations.create({"name": "Globex Corp", **org})
    u = await admin.issuer(issuer_id).users.create(ADA)
    return o.id, u.id


def members_path(account_id: str, issuer_id: str, org_id: str) -> str:
    return f"/v1/accounts/{account_id}/issuers/{issuer_id}/organizations/{org_id}/members"


class TestCreateMember:
    async def test_quickstart_step_4_membership(self, admin: AuthPIAdmin, account: AccountCredentials,
                                                issuer_id: str, pg: asyncpg.Pool):
        org = await admin.issuer(issuer_id).organizations.create({"name": "Globex Corp"})
        user = await admin.issuer(issuer_id).users.create(ADA)
        m = await admin.issuer(issuer_id).organization(org.id).members.create({
            "member_id": user.id,
            "scopes": ["invoices:read", "invoices:write"],
        })
        assert isinstance(m, OrganizationMembership)
        assert (m.org_id, m.member_id, m.member_type, m.issuer_id, m.status) == (
            org.id, user.id, "user", issuer_id, "active")
        assert m.scopes == ["invoices:read", "invoices:write"]
        assert m.user_title is None
        assert m.joined_at > 10**12  # milliseconds in the Core API
        row = await pg.fetchrow("SELECT * FROM memberships WHERE org_id = $1", org.id)
        assert (row["member_id"], row["account_id"]) == (user.id, account.account_id)
        event = await last_event(pg, account.account_id, "organization.membership.created")
        assert (event["user_id"], event["org_id"], event["issuer_id"]) == (user.id, org.id, issuer_id)

    async def test_empty_scopes_refused_writes_nothing(self, admin: AuthPIAdmin,
                                                       account: AccountCredentials, issuer_id: str,
                                                       pg: asyncpg.Pool):
        org_id, user_id = await org_and_user(admin, issuer_id)
        before = await counts(pg, account.account_id, "memberships")
        for body in ({"member_id": user_id, "scopes": []}, {"member_id": user_id},
                     {"member_id": user_id, "scopes": [], "groups": []}):
            with pytest.raises(ValidationError) as err:
                await admin.issuer(issuer_id).organization(org_id).members.create(body)
            assert [f["field"] for f in err.value.fields] == ["scopes"]
        assert await counts(pg, account.account_id, "memberships") == before

    async def test_default_member_scopes_apply_when_scopes_absent(self, admin: AuthPIAdmin,
                                                                  issuer_id: str):
        org_id, user_id = await org_and_user(admin, issuer_id, default_member_scopes=["docs:read"])
        m = await admin.issuer(issuer_id).organization(org_id).members.create({"member_id": user_id})
        assert m.scopes == ["docs:read"]

    @pytest.mark.parametrize(("body", "field"), [
        ({"scopes": ["a:read"]}, "member_id"),
        ({"member_id": 42, "scopes": ["a:read"]}, "member_id"),
        ({"member_id": "not-a-user-id", "scopes": ["a:read"]}, "member_id"),
        ({"member_id": "usr_01jzzzzzzzzzzzzzzzzzzzzzzz", "scopes": ["a:read"]}, "member_id"),
        ({"member_id": "{user}", "scopes": ["invoices"]}, "scopes"),
        ({"member_id": "{user}", "scopes": [":x"]}, "scopes"),
        ({"member_id": "{user}", "scopes": ["a b:c"]}, "scopes"),
        ({"member_id": "{user}", "scopes": "a:read"}, "scopes"),
        ({"member_id": "{user}", "scopes": ["a:read"], "user_title": "t" * 201}, "user_title"),
        ({"member_id": "{user}", "scopes": ["a:read"], "groups": ["grp_01jzzzzzzzzzzzzzzzzzzzzzzz"]},
         "groups"),
        ({"member_id": "{user}", "scopes": ["a:read"], "role": "admin"}, "role"),
        ({"member_id": "{user}", "scopes": ["a:read"], "metadata": "x"}, "metadata"),
    ])
    async def test_bad_input_is_422_and_writes_nothing(self, client: httpx.AsyncClient, admin: AuthPIAdmin,
                                                        account: AccountCredentials, issuer_id: str,
                                                        pg: asyncpg.Pool, body: dict, field: str):
        org_id, user_id = await org_and_user(admin, issuer_id)
        body = {k: (user_id if v == "{user}" else v) for k, v in body.items()}
        before = await counts(pg, account.account_id, "memberships")
        resp = await client.post(members_path(account.account_id, issuer_id, org_id), json=body,
                                 auth=account.basic)
        assert resp.status_code == 422, resp.text
        assert field in [f["field"].split(".")[0] for f in resp.json()["fields"]]
        assert await counts(pg, account.account_id, "memberships") == before

    async def test_scopes_must_lie_within_org_scopes(self, admin: AuthPIAdmin, issuer_id: str):
        org_id, user_id = await org_and_user(admin, issuer_id, scopes=["invoices:*"])
        members = admin.issuer(issuer_id).organization(org_id).members
        with pytest.raises(ValidationError) as err:
            await members.create({"member_id": user_id, "scopes": ["invoices:read", "admin:write"]})
        assert err.value.fields[0]["field"] == "scopes"
        m = await members.create({"member_id": user_id, "scopes": ["invoices:read", "invoices:write"]})
        assert m.scopes == ["invoices:read", "invoices:write"]

    async def test_duplicate_is_409(self, admin: AuthPIAdmin, account: AccountCredentials,
                                    issuer_id: str, pg: asyncpg.Pool):
        org_id, user_id = await org_and_user(admin, issuer_id)
        members = admin.issuer(issuer_id).organization(org_id).members
        await members.create({"member_id": user_id, "scopes": ["a:read"]})
        before = await counts(pg, account.account_id, "memberships")
        with pytest.raises(ConflictError):
            await members.create({"member_id": user_id, "scopes": ["b:read"]})
        assert await counts(pg, account.account_id, "memberships") == before

    async def test_user_of_another_issuer_refused(self, admin: AuthPIAdmin, issuer_id: str,
                                                  second_issuer_id: str):
        org = await admin.issuer(issuer_id).organizations.create({"name": "x"})
        stranger = await admin.issuer(second_issuer_id).users.create(ADA)
        with pytest.raises(ValidationError) as err:
            await admin.issuer(issuer_id).organization(org.id).members.create(
                {"member_id": stranger.id, "scopes": ["a:read"]})
        assert err.value.fields[0]["field"] == "member_id"

    async def test_max_members_enforced(self, admin: AuthPIAdmin, issuer_id: str):
        org_id, user_id = await org_and_user(admin, issuer_id, max_members=1)
        other = await admin.issuer(issuer_id).users.create({**ADA, "username": "b@globex.example"})
        members = admin.issuer(issuer_id).organization(org_id).members
        await members.create({"member_id": user_id, "scopes": ["a:read"]})
        with pytest.raises(ConflictError):
            await members.create({"member_id": other.id, "scopes": ["a:read"]})


class TestListMembers:
    async def test_list_filters_and_pages(self, admin: AuthPIAdmin, issuer_id: str):
        org = await admin.issuer(issuer_id).organizations.create({"name": "x"})
        members = admin.issuer(issuer_id).organization(org.id).members
        ids = []
        for i, scopes in enumerate((["a:read"], ["a:read", "b:write"], ["c:read"])):
            u = await admin.issuer(issuer_id).users.create({**ADA, "username": f"u{i}@globex.example"})
            await members.create({"member_id": u.id, "scopes": scopes})
            ids.append(u.id)
        await members.update(ids[2], {"status": "suspended"})
        page = await members.list(limit=2)
        assert [m.member_id for m in page.data] == [ids[2], ids[1]]
        assert page.has_more
        assert [m.member_id async for m in members.list_all(limit=2)] == ids[::-1]
        assert {m.member_id for m in (await members.list(scope="a:read")).data} == set(ids[:2])
        assert [m.member_id for m in (await members.list(status="suspended")).data] == [ids[2]]


class TestUpdateMember:
    async def test_update_scopes_title_and_event(self, admin: AuthPIAdmin, account: AccountCredentials,
                                                 issuer_id: str, pg: asyncpg.Pool):
        org_id, user_id = await org_and_user(admin, issuer_id)
        members = admin.issuer(issuer_id).organization(org_id).members
        m = await members.create({"member_id": user_id, "scopes": ["a:read"]})
        updated = await members.update(user_id, {"scopes": ["a:read", "a:write"], "user_title": "CFO"},
                                       if_match=m._etag)
        assert (updated.scopes, updated.user_title) == (["a:read", "a:write"], "CFO")
        assert updated.updated_at is not None
        event = await last_event(pg, account.account_id, "organization.membership.updated")
        assert (event["user_id"], event["org_id"]) == (user_id, org_id)
        with pytest.raises(PreconditionFailedError):
            await members.update(user_id, {"user_title": "CEO"}, if_match=m._etag)

    async def test_cannot_empty_a_membership(self, admin: AuthPIAdmin, account: AccountCredentials,
                                             issuer_id: str, pg: asyncpg.Pool):
        org_id, user_id = await org_and_user(admin, issuer_id)
        members = admin.issuer(issuer_id).organization(org_id).members
        await members.create({"member_id": user_id, "scopes": ["a:read"]})
        before = await counts(pg, account.account_id, "memberships")
        with pytest.raises(ValidationError):
            await members.update(user_id, {"scopes": []})
        with pytest.raises(ValidationError):
            await members.update(user_id, {"scopes": ["invoices"]})
        assert await counts(pg, account.account_id, "memberships") == before

    async def test_unknown_member_is_404(self, admin: AuthPIAdmin, issuer_id: str):
        org_id, user_id = await org_and_user(admin, issuer_id)
        with pytest.raises(NotFoundError):
            await admin.issuer(issuer_id).organization(org_id).members.update(user_id, {"scopes": ["a:b"]})


class TestDeleteMember:
    async def test_delete_removes_row_and_records_event(self, admin: AuthPIAdmin,
                                                        account: AccountCredentials, issuer_id: str,
                                                        pg: asyncpg.Pool):
        org_id, user_id = await org_and_user(admin, issuer_id)
        members = admin.issuer(issuer_id).organization(org_id).members
        await members.create({"member_id": user_id, "scopes": ["a:read"]})
        await members.delete(user_id)
        assert await pg.fetchval("SELECT count(*) FROM memberships WHERE org_id = $1", org_id) == 0
        event = await last_event(pg, account.account_id, "organization.membership.deleted")
        assert (event["user_id"], event["org_id"]) == (user_id, org_id)
        with pytest.raises(NotFoundError):
            await members.delete(user_id)


class TestOrganizationsClaim:
    async def test_effective_scopes_active_only(self, app: FastAPI, admin: AuthPIAdmin,
                                                account: AccountCredentials, issuer_id: str):
        scope = admin.issuer(issuer_id)
        user = await scope.users.create(ADA)
        a = await scope.organizations.create({"name": "Globex Corp"})
        b = await scope.organizations.create({"name": "Initech"})
        suspended_org = await scope.organizations.create({"name": "Suspended"})
        suspended_member = await scope.organizations.create({"name": "Paused"})
        group = await scope.organization(a.id).groups.create(
            {"name": "billing", "scopes": ["invoices:write", "reports:read"]})
        m = await scope.organization(a.id).members.create(
            {"member_id": user.id, "scopes": ["invoices:read", "invoices:write"], "groups": [group.id]})
        await scope.organization(b.id).members.create({"member_id": user.id, "scopes": ["docs:read"]})
        for org in (suspended_org, suspended_member):
            await scope.organization(org.id).members.create({"member_id": user.id, "scopes": ["x:read"]})
        await scope.organizations.update(suspended_org.id, {"status": "suspended"})
        await scope.organization(suspended_member.id).members.update(user.id, {"status": "suspended"})

        async with app.state.db.unit_of_work() as session:
            claim = await organizations_claim(session, account_id=account.account_id,
                                              issuer_id=issuer_id, user_id=user.id)
        assert claim[0] == {"id": a.id, "title": "Globex Corp",
                            "scopes": ["invoices:read", "invoices:write", "reports:read"],
                            "joined_at": m.joined_at // 1000}
        assert [(c["id"], c["scopes"]) for c in claim[1:]] == [(b.id, ["docs:read"])]

        # Deleting the group drops its scopes from the claim.
        await scope.organization(a.id).groups.delete(group.id)
        async with app.state.db.unit_of_work() as session:
            claim = await organizations_claim(session, account_id=account.account_id,
                                              issuer_id=issuer_id, user_id=user.id)
        assert claim[0]["scopes"] == ["invoices:read", "invoices:write"]

    async def test_other_tenant_sees_nothing(self, app: FastAPI, admin: AuthPIAdmin,
                                             other_account: AccountCredentials, issuer_id: str,
                                             second_issuer_id: str, account: AccountCredentials):
        org_id, user_id = await org_and_user(admin, issuer_id)
        await admin.issuer(issuer_id).organization(org_id).members.create(
            {"member_id": user_id, "scopes": ["a:read"]})
        async with app.state.db.unit_of_work() as session:
            assert await organizations_claim(session, account_id=other_account.account_id,
                                             issuer_id=issuer_id, user_id=user_id) == []
            assert await organizations_claim(session, account_id=account.account_id,
                                             issuer_id=second_issuer_id, user_id=user_id) == []


class TestMemberIsolation:
    async def test_other_account_gets_404_on_every_route(
            self, admin: AuthPIAdmin, client: httpx.AsyncClient, account: AccountCredentials,
            other_account: AccountCredentials, issuer_id: str, pg: asyncpg.Pool):
        org_id, user_id = await org_and_user(admin, issuer_id)
        await admin.issuer(issuer_id).organization(org_id).members.create(
            {"member_id": user_id, "scopes": ["a:read"]})
        before = await counts(pg, account.account_id, "memberships")
        for acc in (account.account_id, other_account.account_id):
            base = members_path(acc, issuer_id, org_id)
            for method, path, body in [
                ("GET", base, None), ("POST", base, {"member_id": user_id, "scopes": ["a:read"]}),
                ("PATCH", f"{base}/{user_id}", {"scopes": ["b:read"]}),
                ("DELETE", f"{base}/{user_id}", None),
            ]:
                resp = await client.request(method, path, json=body, auth=other_account.basic)
                assert resp.status_code == 404, (method, path, resp.text)
        assert await counts(pg, account.account_id, "memberships") == before
        rows = await pg.fetch("SELECT scopes FROM memberships WHERE org_id = $1", org_id)
        assert [json.loads(r["scopes"]) for r in rows] == [["a:read"]]
