"""Organizations through the official SDK and raw HTTP: CRUD, filters, status, events, isolation."""

from __future__ import annotations

import json

import asyncpg
import httpx
import pytest
from authpi_admin import AuthPIAdmin
from authpi_admin.errors import NotFoundError, PreconditionFailedError, ValidationError
from authpi_admin.generated.models import IssuerOrganizationsListItem, Organization

from tests.conftest import AccountCredentials
from tests.fixtures.tenancy import counts, event_types, last_event


def orgs_path(account_id: str, issuer_id: str) -> str:
    return f"/v1/accounts/{account_id}/issuers/{issuer_id}/organizations"


class TestCreateOrganization:
    async def test_quickstart_step_3(self, admin: AuthPIAdmin, account: AccountCredentials,
                                     issuer_id: str, pg: asyncpg.Pool):
        org = await admin.issuer(issuer_id).organizations.create({"name": "Globex Corp"})
        assert isinstance(org, Organization)
        assert org.id.startswith("org_")
        assert (org.name, org.status, org.org_type, org.issuer_id) == (
            "Globex Corp", "active", "standard", issuer_id)
        assert org._etag == f'"{org.created_at}"'
        row = await pg.fetchrow("SELECT * FROM organizations WHERE id = $1", org.id)
        assert row["account_id"] == account.account_id
        assert row["issuer_id"] == issuer_id
        event = await last_event(pg, account.account_id, "organization.created")
        assert (event["org_id"], event["issuer_id"]) == (org.id, issuer_id)
        assert json.loads(event["subject"]) == {"type": "organization", "id": org.id}

    async def test_full_body_round_trips(self, admin: AuthPIAdmin, issuer_id: str):
        body = {
            "name": "Initech", "description": "TPS reports", "logo_url": "https://initech.example/l.png",
            "max_members": 10, "default_member_scopes": ["reports:read"],
            "invitation_enabled": False, "invitation_message": "Welcome",
            "scopes": ["reports:*", "invoices:read"], "security": {"mfa_required": True},
            "sso": {"enabled": False}, "address": {"country": "US", "city": "Austin"},
            "business_details": {"vat": "x"}, "contact": {"email": "a@initech.example"},
            "social_links": [{"type": "web", "url": "https://initech.example"}],
            "custom_fields": {"tier": "gold"}, "metadata": {"crm": "42"},
        }
        org = await admin.issuer(issuer_id).organizations.create(body)
        assert org.address.country == "US"
        assert org.address.city == "Austin"
        assert org.scopes == ["reports:*", "invoices:read"]
        assert org.security == {"mfa_required": True}
        assert org.metadata.model_dump() == {"crm": "42"}
        assert org.social_links == [{"type": "web", "url": "https://initech.example"}]
        got = await admin.issuer(issuer_id).organizations.get(org.id)
        assert got == org

    @pytest.mark.parametrize("body", [
        {},
        {"name": ""},
        {"name": 5},
        {"name": "x" * 201},
        {"name": "ok", "unknown": 1},
        {"name": "ok", "scopes": ["invoices"]},
        {"name": "ok", "scopes": [":x"]},
        {"name": "ok", "scopes": ["a b:c"]},
        {"name": "ok", "scopes": "invoices:read"},
        {"name": "ok", "logo_url": "javascript:alert(1)"},
        {"name": "ok", "max_members": 0},
        {"name": "ok", "address": {"city": "no country"}},
        {"name": "ok", "metadata": []},
        {"name": "ok", "description": "d" * 2001},
    ])
    async def test_bad_input_is_422_and_writes_nothing(self, client: httpx.AsyncClient,
                                                        account: AccountCredentials, issuer_id: str,
                                                        pg: asyncpg.Pool, body: dict):
        before = await counts(pg, account.account_id, "organizations")
        resp = await client.post(orgs_path(account.account_id, issuer_id), json=body,
                                 auth=account.basic)
        assert resp.status_code in (400, 422), resp.text
        assert resp.json()["fields"]
        assert await counts(pg, account.account_id, "organizations") == before

    async def test_sdk_reports_fields(self, admin: AuthPIAdmin, issuer_id: str):
        with pytest.raises(ValidationError) as err:
            await admin.issuer(issuer_id).organizations.create({"name": "ok", "scopes": ["invoices"]})
        assert [f["field"] for f in err.value.fields] == ["scopes"]

    async def test_unknown_issuer_is_404(self, admin: AuthPIAdmin):
        with pytest.raises(NotFoundError):
            await admin.issuer("i_01jzzzzzzzzzzzzzzzzzzzzzzz").organizations.create({"name": "x"})


class TestListOrganizations:
    async def test_lists_newest_first_and_pages(self, admin: AuthPIAdmin, issuer_id: str):
        ids = [(await admin.issuer(issuer_id).organizations.create({"name": f"o{i}"})).id
               for i in range(3)]
        page = await admin.issuer(issuer_id).organizations.list(limit=2)
        assert all(isinstance(o, IssuerOrganizationsListItem) for o in page.data)
        assert [o.id for o in page.data] == ids[::-1][:2]
        assert page.has_more
        rest = await admin.issuer(issuer_id).organizations.list(limit=2, cursor=page.next_cursor)
        assert [o.id for o in rest.data] == [ids[0]]
        assert not rest.has_more
        assert [o.id async for o in admin.issuer(issuer_id).organizations.list_all(limit=1)] == ids[::-1]

    async def test_boolean_filters(self, admin: AuthPIAdmin, issuer_id: str):
        orgs = admin.issuer(issuer_id).organizations
        sso = await orgs.create({"name": "sso", "sso": {"enabled": True, "sso_only": True, "connection": {
            "type": "oidc", "issuer": "https://idp.example", "client_id": "c", "client_secret": "s"}}})
        mfa = await orgs.create({"name": "mfa", "security": {"mfa_required": True}})
        closed = await orgs.create({"name": "closed", "invitation_enabled": False})
        plain = await orgs.create({"name": "plain"})

        async def ids(**kw: str) -> set[str]:
            return {o.id for o in (await orgs.list(**kw)).data}

        assert await ids(sso_enabled="true") == {sso.id}
        assert await ids(sso_only="true") == {sso.id}
        assert await ids(sso_enabled="false") == {mfa.id, closed.id, plain.id}
        assert await ids(mfa_required="true") == {mfa.id}
        assert await ids(invitation_enabled="false") == {closed.id}
        assert await ids(invitation_enabled="true") == {sso.id, mfa.id, plain.id}
        await orgs.update(plain.id, {"status": "suspended"})
        assert await ids(status="suspended") == {plain.id}

    async def test_bad_flag_is_422(self, admin: AuthPIAdmin, issuer_id: str):
        with pytest.raises(ValidationError) as err:
            await admin.issuer(issuer_id).organizations.list(sso_enabled="yes")
        assert err.value.fields[0]["field"] == "sso_enabled"

    async def test_other_issuer_orgs_not_listed(self, admin: AuthPIAdmin, issuer_id: str,
                                                second_issuer_id: str):
        await admin.issuer(issuer_id).organizations.create({"name": "x"})
        assert (await admin.issuer(second_issuer_id).organizations.list()).data == []


class TestUpdateOrganization:
    async def test_patch_changes_only_given_fields(self, admin: AuthPIAdmin, account: AccountCredentials,
                                                   issuer_id: str, pg: asyncpg.Pool):
        orgs = admin.issuer(issuer_id).organizations
        org = await orgs.create({"name": "Globex", "description": "d", "metadata": {"a": 1}})
        updated = await orgs.update(org.id, {"description": None, "address": {"country": "FR"}},
                                    if_match=org._etag)
        assert (updated.name, updated.description, updated.address.country) == ("Globex", None, "FR")
        assert updated.metadata.model_dump() == {"a": 1}
        assert updated.updated_at > org.created_at
        assert updated._etag != org._etag
        event = await last_event(pg, account.account_id, "organization.updated")
        assert json.loads(event["data"]) == {"changed": ["address", "description"]}

    async def test_stale_if_match_is_412(self, admin: AuthPIAdmin, issuer_id: str):
        org = await admin.issuer(issuer_id).organizations.create({"name": "x"})
        await admin.issuer(issuer_id).organizations.update(org.id, {"name": "y"})
        with pytest.raises(PreconditionFailedError) as err:
            await admin.issuer(issuer_id).organization(org.id).update({"name": "z"}, if_match=org._etag)
        assert err.value.current_etag != org._etag

    async def test_suspend_and_reactivate_record_events_and_notify(
            self, admin: AuthPIAdmin, account: AccountCredentials, issuer_id: str, pg: asyncpg.Pool,
            database_url: str):
        org = await admin.issuer(issuer_id).organizations.create({"name": "x"})
        conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg", "postgresql"))
        notes: list[str] = []
        await conn.add_listener("authpi_invalidation", lambda *a: notes.append(a[3]))
        try:
            suspended = await admin.issuer(issuer_id).organizations.update(
                org.id, {"status": "suspended", "status_reason": "unpaid"})
            assert (suspended.status, suspended.status_reason) == ("suspended", "unpaid")
            assert suspended.status_at
            assert suspended.status_by == account.key_id
            active = await admin.issuer(issuer_id).organizations.update(org.id, {"status": "active"})
            assert active.status == "active"
            await admin.issuer(issuer_id).organizations.update(org.id, {"scopes": ["a:read"]})
            await admin.issuer(issuer_id).organizations.update(org.id, {"name": "no notify"})
            for _ in range(50):
                if len(notes) >= 3:
                    break
                await conn.execute("SELECT 1")
        finally:
            await conn.close()
        assert notes == [f"org:{org.id}"] * 3
        types = await event_types(pg, account.account_id)
        assert types[-5:] == ["organization.created", "organization.suspended",
                              "organization.reactivated", "organization.updated",
                              "organization.updated"]

    async def test_status_deleted_not_allowed_by_patch(self, admin: AuthPIAdmin, issuer_id: str):
        org = await admin.issuer(issuer_id).organizations.create({"name": "x"})
        with pytest.raises(ValidationError):
            await admin.issuer(issuer_id).organizations.update(org.id, {"status": "deleted"})

    async def test_bad_scopes_write_nothing(self, admin: AuthPIAdmin, account: AccountCredentials,
                                            issuer_id: str, pg: asyncpg.Pool):
        org = await admin.issuer(issuer_id).organizations.create({"name": "x"})
        before = await counts(pg, account.account_id, "organizations")
        with pytest.raises(ValidationError):
            await admin.issuer(issuer_id).organizations.update(org.id, {"scopes": ["a b:c"]})
        assert await counts(pg, account.account_id, "organizations") == before
        assert (await admin.issuer(issuer_id).organizations.get(org.id)).scopes == []


class TestDeleteOrganization:
    async def test_soft_delete_then_404_everywhere(self, admin: AuthPIAdmin, account: AccountCredentials,
                                                   issuer_id: str, pg: asyncpg.Pool):
        orgs = admin.issuer(issuer_id).organizations
        org = await orgs.create({"name": "x"})
        await orgs.delete(org.id)
        assert await pg.fetchval("SELECT status FROM organizations WHERE id = $1", org.id) == "deleted"
        assert (await last_event(pg, account.account_id, "organization.deleted"))["org_id"] == org.id
        scope = admin.issuer(issuer_id).organization(org.id)
        for call in (scope.get(), scope.update({"name": "y"}), scope.delete(), scope.members.list(),
                     scope.groups.list(), scope.groups.create({"name": "g"}),
                     scope.members.create({"member_id": "usr_01jzzzzzzzzzzzzzzzzzzzzzzz",
                                           "scopes": ["a:b"]})):
            with pytest.raises(NotFoundError):
                await call
        assert org.id not in {o.id for o in (await orgs.list()).data}

    async def test_delete_with_stale_if_match_is_412(self, admin: AuthPIAdmin, issuer_id: str):
        org = await admin.issuer(issuer_id).organizations.create({"name": "x"})
        with pytest.raises(PreconditionFailedError):
            await admin.issuer(issuer_id).organizations.delete(org.id, if_match='"1"')


class TestOrganizationIsolation:
    async def test_other_account_gets_404_on_every_route(
            self, admin: AuthPIAdmin, other_admin: AuthPIAdmin, account: AccountCredentials,
            other_account: AccountCredentials, client: httpx.AsyncClient, issuer_id: str):
        org = await admin.issuer(issuer_id).organizations.create({"name": "x"})
        base = orgs_path(account.account_id, issuer_id)
        for method, path, body in [("GET", base, None), ("POST", base, {"name": "y"}),
                                   ("GET", f"{base}/{org.id}", None),
                                   ("PATCH", f"{base}/{org.id}", {"name": "y"}),
                                   ("DELETE", f"{base}/{org.id}", None)]:
            resp = await client.request(method, path, json=body, auth=other_account.basic)
            assert resp.status_code == 404, (method, path, resp.text)
        # The other account's own key, with its own account id in the path: still 404.
        other = orgs_path(other_account.account_id, issuer_id)
        for method, path, body in [("GET", other, None), ("POST", other, {"name": "y"}),
                                   ("GET", f"{other}/{org.id}", None),
                                   ("PATCH", f"{other}/{org.id}", {"name": "y"}),
                                   ("DELETE", f"{other}/{org.id}", None)]:
            resp = await client.request(method, path, json=body, auth=other_account.basic)
            assert resp.status_code == 404, (method, path, resp.text)
        assert (await admin.issuer(issuer_id).organizations.get(org.id)).name == "x"

    async def test_org_of_issuer_x_is_404_under_issuer_y(self, admin: AuthPIAdmin, issuer_id: str,
                                                          second_issuer_id: str):
        org = await admin.issuer(issuer_id).organizations.create({"name": "x"})
        scope = admin.issuer(second_issuer_id).organization(org.id)
        for call in (scope.get(), scope.update({"name": "y"}), scope.delete(), scope.members.list(),
                     scope.groups.list()):
            with pytest.raises(NotFoundError):
                await call


class TestIdempotentCreate:
    async def test_same_key_replays_without_a_second_row(self, admin: AuthPIAdmin,
                                                         account: AccountCredentials, issuer_id: str,
                                                         pg: asyncpg.Pool):
        orgs = admin.issuer(issuer_id).organizations
        first = await orgs.create({"name": "Globex Corp"}, idempotency_key="create-globex-1")
        second = await orgs.create({"name": "Globex Corp"}, idempotency_key="create-globex-1")
        assert first.id == second.id
        assert (await counts(pg, account.account_id, "organizations"))["organizations"] == 1
        with pytest.raises(ValidationError):
            await orgs.create({"name": "Initech"}, idempotency_key="create-globex-1")
