"""Organization invitations through the official SDK and raw HTTP, and acceptance."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import httpx
import pytest
from authpi_admin import AuthPIAdmin
from authpi_admin.errors import ConflictError, NotFoundError, PreconditionFailedError, ValidationError
from authpi_admin.generated.models import OrganizationInvitationPublic
from fastapi import FastAPI

from app.core.errors import NotFound
from app.core.ids import now_ms
from app.invitation.service import accept_invitation
from app.models.user import User
from tests.conftest import AccountCredentials
from tests.fixtures.tenancy import counts, event_types, last_event


def inv_path(account_id: str, issuer_id: str, org_id: str) -> str:
    return f"/v1/accounts/{account_id}/issuers/{issuer_id}/organizations/{org_id}/invitations"


async def new_org(admin: AuthPIAdmin, issuer_id: str, **body: object) -> str:
    return (await admin.issuer(issuer_id).organizations.create({"name": "Globex Corp", **body})).id


class TestCreateInvitation:
    async def test_create_minimal_has_nullable_keys(self, admin: AuthPIAdmin, client: httpx.AsyncClient,
                                                     account: AccountCredentials, issuer_id: str,
                                                     pg: asyncpg.Pool):
        org_id = await new_org(admin, issuer_id)
        resp = await client.post(inv_path(account.account_id, issuer_id, org_id), auth=account.basic,
                                 json={"email": "grace@globex.example", "scopes": ["invoices:read"]})
        assert resp.status_code == 201
        data = resp.json()["data"]
        assert data["user_title"] is None
        assert data["message"] is None
        inv = OrganizationInvitationPublic(**data)
        assert inv.id.startswith("inv_")
        assert (inv.status, inv.email_invited, inv.scopes) == ("pending", "grace@globex.example",
                                                               ["invoices:read"])
        assert inv.expires_at > inv.created_at
        assert inv.inviter.id == account.key_id
        event = await last_event(pg, account.account_id, "organization.invitation.created")
        assert event["org_id"] == org_id
        assert json.loads(event["data"])["email_invited"] == "grace@globex.example"

    async def test_sdk_create_with_defaults_from_org(self, admin: AuthPIAdmin, issuer_id: str):
        org_id = await new_org(admin, issuer_id, default_member_scopes=["docs:read"],
                               invitation_message="Join us")
        inv = await admin.issuer(issuer_id).organization(org_id).invitations.create(
            {"email": "grace@globex.example", "user_title": "CTO"})
        assert (inv.scopes, inv.message, inv.user_title) == (["docs:read"], "Join us", "CTO")

    async def test_existing_user_is_linked(self, admin: AuthPIAdmin, issuer_id: str):
        user = await admin.issuer(issuer_id).users.create(
            {"username_type": "email", "username": "Grace@globex.example"})
        org_id = await new_org(admin, issuer_id)
        inv = await admin.issuer(issuer_id).organization(org_id).invitations.create(
            {"email": "grace@GLOBEX.example", "scopes": ["a:read"]})
        assert inv.user_id_invited == user.id

    @pytest.mark.parametrize(("body", "field"), [
        ({"scopes": ["a:read"]}, "email"),
        ({"email": "nope", "scopes": ["a:read"]}, "email"),
        ({"email": "g@globex.example", "scopes": []}, "scopes"),
        ({"email": "g@globex.example"}, "scopes"),
        ({"email": "g@globex.example", "scopes": ["invoices"]}, "scopes"),
        ({"email": "g@globex.example", "scopes": ["a b:c"]}, "scopes"),
        ({"email": "g@globex.example", "scopes": ["a:read"], "expires_at": 1}, "expires_at"),
        ({"email": "g@globex.example", "scopes": ["a:read"], "message": "m" * 2001}, "message"),
        ({"email": "g@globex.example", "scopes": ["a:read"], "groups": ["grp_01jzzzzzzzzzzzzzzzzzzzzzzz"]},
         "groups"),
        ({"email": "g@globex.example", "scopes": ["a:read"], "role": "x"}, "role"),
    ])
    async def test_bad_input_is_422_and_writes_nothing(self, client: httpx.AsyncClient, admin: AuthPIAdmin,
                                                        account: AccountCredentials, issuer_id: str,
                                                        pg: asyncpg.Pool, body: dict, field: str):
        org_id = await new_org(admin, issuer_id)
        before = await counts(pg, account.account_id, "invitations", "outbox")
        resp = await client.post(inv_path(account.account_id, issuer_id, org_id), json=body,
                                 auth=account.basic)
        assert resp.status_code == 422, resp.text
        assert field in [f["field"].split(".")[0] for f in resp.json()["fields"]]
        assert await counts(pg, account.account_id, "invitations", "outbox") == before

    async def test_duplicate_pending_and_disabled_are_409(self, admin: AuthPIAdmin, issuer_id: str):
        org_id = await new_org(admin, issuer_id)
        invitations = admin.issuer(issuer_id).organization(org_id).invitations
        await invitations.create({"email": "g@globex.example", "scopes": ["a:read"]})
        with pytest.raises(ConflictError):
            await invitations.create({"email": "G@globex.example", "scopes": ["a:read"]})
        closed = await new_org(admin, issuer_id, invitation_enabled=False)
        with pytest.raises(ConflictError):
            await admin.issuer(issuer_id).organization(closed).invitations.create(
                {"email": "g@globex.example", "scopes": ["a:read"]})


class TestListGetUpdateInvitation:
    async def test_list_get_update(self, admin: AuthPIAdmin, account: AccountCredentials,
                                   issuer_id: str, pg: asyncpg.Pool):
        org_id = await new_org(admin, issuer_id)
        invitations = admin.issuer(issuer_id).organization(org_id).invitations
        a = await invitations.create({"email": "a@globex.example", "scopes": ["a:read"]})
        b = await invitations.create({"email": "b@globex.example", "scopes": ["a:read"]})
        assert [i.id for i in (await invitations.list()).data] == [b.id, a.id]
        assert [i.id async for i in invitations.list_all(limit=1)] == [b.id, a.id]
        got = await invitations.get(a.id)
        # The relay may have sent its email since: that is the one field allowed to change.
        assert got.model_copy(update={"last_email_sent_at": None}) == a
        updated = await invitations.update(a.id, {"scopes": ["a:read", "a:write"], "message": "hi"},
                                           if_match=got._etag)
        assert (updated.scopes, updated.message) == (["a:read", "a:write"], "hi")
        with pytest.raises(PreconditionFailedError):
            await invitations.update(a.id, {"message": "x"}, if_match=got._etag)
        with pytest.raises(ValidationError):
            await invitations.update(a.id, {"scopes": []})
        assert "organization.invitation.updated" in await event_types(pg, account.account_id)

    async def test_expired_status_and_filter(self, admin: AuthPIAdmin, issuer_id: str, pg: asyncpg.Pool):
        org_id = await new_org(admin, issuer_id)
        invitations = admin.issuer(issuer_id).organization(org_id).invitations
        inv = await invitations.create({"email": "a@globex.example", "scopes": ["a:read"]})
        live = await invitations.create({"email": "b@globex.example", "scopes": ["a:read"]})
        await pg.execute("UPDATE invitations SET expires_at = $1 WHERE id = $2", now_ms() - 1, inv.id)
        assert (await invitations.get(inv.id)).status == "expired"
        assert [i.id for i in (await invitations.list(status="expired")).data] == [inv.id]
        assert [i.id for i in (await invitations.list(status="pending")).data] == [live.id]
        with pytest.raises(ConflictError):
            await invitations.update(inv.id, {"message": "x"})
        resent = await invitations.resend(inv.id)
        assert resent["status"] == "pending"
        assert resent["expires_at"] > now_ms()


class TestResendRevokeInvitation:
    async def test_resend_then_revoke(self, admin: AuthPIAdmin, account: AccountCredentials,
                                      issuer_id: str, pg: asyncpg.Pool, client: httpx.AsyncClient):
        org_id = await new_org(admin, issuer_id)
        invitations = admin.issuer(issuer_id).organization(org_id).invitations
        inv = await invitations.create({"email": "a@globex.example", "scopes": ["a:read"]})
        # No body, no content-type: the SDK sends these actions bare.
        resp = await client.post(f"{inv_path(account.account_id, issuer_id, org_id)}/{inv.id}/resend",
                                 auth=account.basic)
        assert resp.status_code == 200
        assert resp.json()["data"]["id"] == inv.id
        revoked = await invitations.revoke(inv.id)
        assert revoked["status"] == "revoked"
        assert revoked["revoked_at"]
        assert revoked["_etag"]
        with pytest.raises(ConflictError):
            await invitations.revoke(inv.id)
        with pytest.raises(ConflictError):
            await invitations.resend(inv.id)
        trail = [t for t in await event_types(pg, account.account_id) if not t.startswith("email.")]
        assert trail[-3:] == [
            "organization.invitation.created", "organization.invitation.resent",
            "organization.invitation.revoked"]

    async def test_stale_if_match_on_actions(self, admin: AuthPIAdmin, issuer_id: str):
        org_id = await new_org(admin, issuer_id)
        invitations = admin.issuer(issuer_id).organization(org_id).invitations
        inv = await invitations.create({"email": "a@globex.example", "scopes": ["a:read"]})
        with pytest.raises(PreconditionFailedError):
            await invitations.revoke(inv.id, if_match='"1"')
        assert (await invitations.get(inv.id)).status == "pending"


class TestAcceptInvitation:
    async def test_accept_creates_membership(self, app: FastAPI, admin: AuthPIAdmin,
                                             account: AccountCredentials, issuer_id: str,
                                             pg: asyncpg.Pool):
        org_id = await new_org(admin, issuer_id)
        scope = admin.issuer(issuer_id).organization(org_id)
        group = await scope.groups.create({"name": "g", "scopes": ["b:read"]})
        inv = await scope.invitations.create({"email": "grace@globex.example", "scopes": ["a:read"],
                                              "groups": [group.id], "user_title": "CTO"})
        user = await admin.issuer(issuer_id).users.create(
            {"username_type": "email", "username": "grace@globex.example"})
        stranger = await admin.issuer(issuer_id).users.create(
            {"username_type": "email", "username": "eve@globex.example"})
        async with app.state.db.unit_of_work() as session:
            eve = await session.get(User, stranger.id)
            with pytest.raises(NotFound):
                await accept_invitation(session, account_id=account.account_id, issuer_id=issuer_id,
                                        invitation_id=inv.id, user=eve)
        async with app.state.db.unit_of_work() as session:
            grace = await session.get(User, user.id)
            m = await accept_invitation(session, account_id=account.account_id, issuer_id=issuer_id,
                                        invitation_id=inv.id, user=grace)
            assert (m.scopes, m.groups, m.user_title) == (["a:read"], [group.id], "CTO")
        got = await scope.invitations.get(inv.id)
        assert (got.status, got.user_id_invited) == ("accepted", user.id)
        assert got.accepted_at
        assert [mm.member_id for mm in (await scope.members.list()).data] == [user.id]
        assert (await event_types(pg, account.account_id))[-2:] == [
            "organization.membership.created", "organization.invitation.accepted"]


class TestInvitationIsolation:
    async def test_other_account_gets_404_on_every_route(
            self, admin: AuthPIAdmin, client: httpx.AsyncClient, account: AccountCredentials,
            other_account: AccountCredentials, issuer_id: str, second_issuer_id: str, pg: asyncpg.Pool):
        org_id = await new_org(admin, issuer_id)
        inv = await admin.issuer(issuer_id).organization(org_id).invitations.create(
            {"email": "a@globex.example", "scopes": ["a:read"]})
        for _ in range(200):  # its email went out (email.sent is in the trail): nothing else may change
            if await pg.fetchval("SELECT status FROM outbox WHERE ref_id = $1", inv.id) == "sent":
                break
            await asyncio.sleep(0.05)
        before = await counts(pg, account.account_id, "invitations", "outbox")
        for acc in (account.account_id, other_account.account_id):
            base = inv_path(acc, issuer_id, org_id)
            for method, path, body in [
                ("GET", base, None), ("POST", base, {"email": "b@globex.example", "scopes": ["a:read"]}),
                ("GET", f"{base}/{inv.id}", None), ("PATCH", f"{base}/{inv.id}", {"message": "x"}),
                ("POST", f"{base}/{inv.id}/resend", None), ("POST", f"{base}/{inv.id}/revoke", None),
            ]:
                resp = await client.request(method, path, json=body, auth=other_account.basic)
                assert resp.status_code == 404, (method, path, resp.text)
        assert await counts(pg, account.account_id, "invitations", "outbox") == before
        with pytest.raises(NotFoundError):
            await admin.issuer(second_issuer_id).organization(org_id).invitations.get(inv.id)
        still = await admin.issuer(issuer_id).organization(org_id).invitations.get(inv.id)
        assert still.status == "pending"
