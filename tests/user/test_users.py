"""Users through the official SDK and raw HTTP: CRUD, uniqueness, blocking, passwords, isolation."""

from __future__ import annotations

import json

import asyncpg
import httpx
import pytest
from authpi_admin import AuthPIAdmin
from authpi_admin.errors import ConflictError, NotFoundError, PreconditionFailedError, ValidationError
from authpi_admin.generated.models import IssuerUsersListItem, User
from fastapi import FastAPI

from app.core.crypto import DUMMY_HASH, check_in_thread
from app.user import service as user_service
from tests.conftest import AccountCredentials
from tests.fixtures.tenancy import counts, event_types, last_event

ADA = {"username_type": "email", "username": "ada@globex.example",
       "profile": {"first_name": "Ada", "last_name": "Lovelace"}}


def users_path(account_id: str, issuer_id: str) -> str:
    return f"/v1/accounts/{account_id}/issuers/{issuer_id}/users"


class TestCreateUser:
    async def test_quickstart_step_4_user(self, admin: AuthPIAdmin, account: AccountCredentials,
                                          issuer_id: str, pg: asyncpg.Pool):
        user = await admin.issuer(issuer_id).users.create(ADA)
        assert isinstance(user, User)
        assert user.id.startswith("usr_")
        assert (user.username, user.username_type, user.status) == ("ada@globex.example", "email",
                                                                      "active")
        assert user.profile == {"first_name": "Ada", "last_name": "Lovelace"}
        row = await pg.fetchrow("SELECT * FROM users WHERE id = $1", user.id)
        assert (row["account_id"], row["issuer_id"]) == (account.account_id, issuer_id)
        assert row["password_hash"] is None
        event = await last_event(pg, account.account_id, "user.created")
        assert (event["user_id"], event["issuer_id"]) == (user.id, issuer_id)

    async def test_password_is_hashed_and_never_returned(self, client: httpx.AsyncClient,
                                                         account: AccountCredentials, issuer_id: str,
                                                         pg: asyncpg.Pool):
        resp = await client.post(users_path(account.account_id, issuer_id), auth=account.basic,
                                 json={**ADA, "password": "correct horse battery"})
        assert resp.status_code == 201
        assert "correct horse" not in resp.text
        assert "password_hash" not in resp.text
        stored = await pg.fetchval("SELECT password_hash FROM users WHERE id = $1",
                                   resp.json()["data"]["id"])
        assert stored.startswith("$argon2id$")
        events = await pg.fetch("SELECT data::text AS d FROM events WHERE account_id = $1",
                                account.account_id)
        assert all("correct horse" not in e["d"] for e in events)

    async def test_username_unique_case_insensitively(self, admin: AuthPIAdmin,
                                                      account: AccountCredentials, issuer_id: str,
                                                      pg: asyncpg.Pool):
        await admin.issuer(issuer_id).users.create(ADA)
        before = await counts(pg, account.account_id, "users")
        with pytest.raises(ConflictError):
            await admin.issuer(issuer_id).users.create({**ADA, "username": "ADA@Globex.Example"})
        assert await counts(pg, account.account_id, "users") == before

    async def test_same_username_in_another_issuer_is_fine(self, admin: AuthPIAdmin, issuer_id: str,
                                                           second_issuer_id: str):
        await admin.issuer(issuer_id).users.create(ADA)
        assert (await admin.issuer(second_issuer_id).users.create(ADA)).username == ADA["username"]

    @pytest.mark.parametrize(("body", "field"), [
        ({"username": "a@b.example"}, "username_type"),
        ({"username_type": "email"}, "username"),
        ({**ADA, "username": "not-an-email"}, "username"),
        ({**ADA, "username": "a b@c.example"}, "username"),
        ({**ADA, "username": "x" * 321}, "username"),
        ({**ADA, "username_type": "fax"}, "username_type"),
        ({**ADA, "username_type": "phone", "username": "12345"}, "username"),
        ({**ADA, "profile": "Ada"}, "profile"),
        ({**ADA, "password": "short"}, "password"),
        ({**ADA, "password": 12345678}, "password"),
        ({**ADA, "scopes": ["invoices"]}, "scopes.0" ),
        ({**ADA, "id": "usr_01jzzzzzzzzzzzzzzzzzzzzzzz"}, "id"),
    ])
    async def test_bad_input_is_422_and_writes_nothing(self, client: httpx.AsyncClient,
                                                        account: AccountCredentials, issuer_id: str,
                                                        pg: asyncpg.Pool, body: dict, field: str):
        before = await counts(pg, account.account_id, "users")
        resp = await client.post(users_path(account.account_id, issuer_id), json=body,
                                 auth=account.basic)
        assert resp.status_code == 422, resp.text
        fields = [f["field"] for f in resp.json()["fields"]]
        assert any(f.split(".")[0] == field.split(".")[0] for f in fields), fields
        assert await counts(pg, account.account_id, "users") == before

    async def test_phone_and_plain_usernames(self, admin: AuthPIAdmin, issuer_id: str):
        users = admin.issuer(issuer_id).users
        phone = await users.create({"username_type": "phone", "username": "+15551234567"})
        plain = await users.create({"username_type": "username", "username": "ada_l"})
        assert (phone.username, plain.username) == ("+15551234567", "ada_l")


class TestListUsers:
    async def test_list_items_parse_and_page(self, admin: AuthPIAdmin, issuer_id: str):
        users = admin.issuer(issuer_id).users
        ids = [(await users.create({**ADA, "username": f"u{i}@globex.example"})).id for i in range(3)]
        page = await users.list(limit=2)
        assert all(isinstance(u, IssuerUsersListItem) for u in page.data)
        assert [u.user_id for u in page.data] == ids[::-1][:2]
        assert page.has_more
        assert [u.user_id async for u in users.list_all(limit=2)] == ids[::-1]
        item = page.data[0]
        assert (item.issuer_id, item.store_id, item.region) == (issuer_id, "primary", None)
        assert len(item.username_hash) == 64
        assert "globex" not in item.username_hash

    async def test_status_filter_and_deleted_hidden(self, admin: AuthPIAdmin, issuer_id: str):
        users = admin.issuer(issuer_id).users
        a = await users.create({**ADA, "username": "a@globex.example"})
        b = await users.create({**ADA, "username": "b@globex.example"})
        c = await users.create({**ADA, "username": "c@globex.example"})
        await users.update(b.id, {"status": "blocked"})
        await users.delete(c.id)
        assert [u.user_id for u in (await users.list(status="blocked")).data] == [b.id]
        assert {u.user_id for u in (await users.list()).data} == {a.id, b.id}


class TestGetUser:
    async def test_get(self, admin: AuthPIAdmin, issuer_id: str):
        user = await admin.issuer(issuer_id).users.create(ADA)
        got = await admin.issuer(issuer_id).user(user.id).get()
        assert got == user
        assert got._etag == f'"{user.created_at}"'

    async def test_unknown_and_malformed_ids_are_404(self, admin: AuthPIAdmin, issuer_id: str):
        for user_id in ("usr_01jzzzzzzzzzzzzzzzzzzzzzzz", "nope", "x" * 300):
            with pytest.raises(NotFoundError):
                await admin.issuer(issuer_id).users.get(user_id)


class TestUpdateUser:
    async def test_patch_profile_and_metadata(self, admin: AuthPIAdmin, account: AccountCredentials,
                                              issuer_id: str, pg: asyncpg.Pool):
        user = await admin.issuer(issuer_id).users.create(ADA)
        updated = await admin.issuer(issuer_id).users.update(
            user.id, {"profile": {"first_name": "Augusta"}, "metadata": {"crm": 1}}, if_match=user._etag)
        assert updated.profile == {"first_name": "Augusta"}
        assert updated.metadata.model_dump() == {"crm": 1}
        assert updated.username == ADA["username"]
        event = await last_event(pg, account.account_id, "user.updated")
        assert json.loads(event["data"]) == {"changed": ["metadata", "profile"]}

    async def test_block_and_unblock(self, admin: AuthPIAdmin, account: AccountCredentials,
                                     issuer_id: str, pg: asyncpg.Pool):
        user = await admin.issuer(issuer_id).users.create(ADA)
        blocked = await admin.issuer(issuer_id).users.update(
            user.id, {"status": "blocked", "status_reason": "fraud"})
        assert (blocked.status, blocked.status_reason, blocked.status_by) == (
            "blocked", "fraud", account.key_id)
        active = await admin.issuer(issuer_id).users.update(user.id, {"status": "active"})
        assert active.status == "active"
        assert (await event_types(pg, account.account_id))[-3:] == [
            "user.created", "user.blocked", "user.unblocked"]

    async def test_username_change_checks_uniqueness_and_format(self, admin: AuthPIAdmin,
                                                                issuer_id: str):
        users = admin.issuer(issuer_id).users
        await users.create({**ADA, "username": "taken@globex.example"})
        user = await users.create(ADA)
        with pytest.raises(ConflictError):
            await users.update(user.id, {"username": "TAKEN@globex.example"})
        with pytest.raises(ValidationError) as err:
            await users.update(user.id, {"username": "no-at-sign"})
        assert err.value.fields[0]["field"] == "username"
        renamed = await users.update(user.id, {"username": "ada2@globex.example"})
        assert renamed.username == "ada2@globex.example"

    async def test_bad_status_and_stale_etag(self, admin: AuthPIAdmin, issuer_id: str):
        user = await admin.issuer(issuer_id).users.create(ADA)
        with pytest.raises(ValidationError):
            await admin.issuer(issuer_id).users.update(user.id, {"status": "deleted"})
        with pytest.raises(PreconditionFailedError):
            await admin.issuer(issuer_id).users.update(user.id, {"profile": {}}, if_match='"1"')


class TestDeleteUser:
    async def test_soft_delete_frees_username(self, admin: AuthPIAdmin, account: AccountCredentials,
                                              issuer_id: str, pg: asyncpg.Pool):
        users = admin.issuer(issuer_id).users
        user = await users.create({**ADA, "password": "correct horse battery"})
        await users.delete(user.id)
        row = await pg.fetchrow("SELECT status, password_hash FROM users WHERE id = $1", user.id)
        assert (row["status"], row["password_hash"]) == ("deleted", None)
        assert (await last_event(pg, account.account_id, "user.deleted"))["user_id"] == user.id
        with pytest.raises(NotFoundError):
            await users.get(user.id)
        with pytest.raises(NotFoundError):
            await users.delete(user.id)
        assert (await users.create(ADA)).id != user.id


class TestPasswordVerifier:
    def path(self, account: AccountCredentials, issuer_id: str, user_id: str) -> str:
        return f"{users_path(account.account_id, issuer_id)}/{user_id}/verifiers"

    async def test_set_list_get_delete(self, admin: AuthPIAdmin, client: httpx.AsyncClient,
                                       account: AccountCredentials, issuer_id: str, pg: asyncpg.Pool):
        user = await admin.issuer(issuer_id).users.create(ADA)
        verifiers = admin.issuer(issuer_id).user(user.id).verifiers
        assert (await verifiers.list()).data == []
        resp = await client.post(self.path(account, issuer_id, user.id), auth=account.basic,
                                 json={"type": "password", "password": "correct horse battery"})
        assert resp.status_code == 201
        body = resp.json()["data"]
        assert set(body) >= {"id", "type", "status", "created_at"}
        assert "correct horse" not in resp.text
        assert body["type"] == "password"
        page = await verifiers.list()
        assert not page.has_more
        assert [v.model_dump()["id"] for v in page.data] == [body["id"]]
        assert (await verifiers.get(body["id"])).model_dump()["type"] == "password"
        assert (await last_event(pg, account.account_id, "user.password.changed"))["user_id"] == user.id
        await verifiers.delete(body["id"])
        assert await pg.fetchval("SELECT password_hash FROM users WHERE id = $1", user.id) is None
        assert (await verifiers.list()).data == []
        with pytest.raises(NotFoundError):
            await verifiers.delete(body["id"])

    @pytest.mark.parametrize("body", [
        {"type": "password", "password": "short"},
        {"type": "password"},
        {"type": "totp", "password": "long enough pw"},
        {"password": "long enough pw"},
    ])
    async def test_bad_body_writes_nothing(self, client: httpx.AsyncClient, admin: AuthPIAdmin,
                                           account: AccountCredentials, issuer_id: str,
                                           pg: asyncpg.Pool, body: dict):
        user = await admin.issuer(issuer_id).users.create(ADA)
        before = await counts(pg, account.account_id, "users")
        resp = await client.post(self.path(account, issuer_id, user.id), auth=account.basic, json=body)
        assert resp.status_code == 422
        assert resp.json()["fields"]
        assert await counts(pg, account.account_id, "users") == before
        assert await pg.fetchval("SELECT password_hash FROM users WHERE id = $1", user.id) is None


class TestAuthenticatePassword:
    async def test_right_wrong_unknown_blocked(self, app: FastAPI, admin: AuthPIAdmin,
                                               account: AccountCredentials, issuer_id: str,
                                               monkeypatch: pytest.MonkeyPatch):
        user = await admin.issuer(issuer_id).users.create({**ADA, "password": "correct horse battery"})
        kw = {"account_id": account.account_id, "issuer_id": issuer_id}

        async def auth(username: str, password: str, **extra: str):
            async with app.state.db.unit_of_work() as session:
                return await user_service.authenticate_password(
                    session, **{**kw, **extra}, username=username, password=password)

        assert (await auth("ADA@globex.example", "correct horse battery")).id == user.id
        assert await auth("ada@globex.example", "wrong password") is None
        assert await auth("ada@globex.example", "correct horse battery",
                          account_id="acc_01jzzzzzzzzzzzzzzzzzzzzzzz") is None
        # Unknown usernames are still checked against the dummy hash (uniform timing).
        seen: list[str | None] = []

        async def recording(stored: str | None, pw: str) -> bool:
            seen.append(stored)
            return await check_in_thread(stored, pw)

        assert await auth("nobody@globex.example", "correct horse battery", check=recording) is None
        assert seen == [DUMMY_HASH]
        await admin.issuer(issuer_id).users.update(user.id, {"status": "blocked"})
        assert await auth("ada@globex.example", "correct horse battery") is None


class TestUserIsolation:
    async def test_other_account_gets_404_on_every_route(
            self, admin: AuthPIAdmin, client: httpx.AsyncClient, account: AccountCredentials,
            other_account: AccountCredentials, issuer_id: str, pg: asyncpg.Pool):
        user = await admin.issuer(issuer_id).users.create(ADA)
        before = await counts(pg, account.account_id, "users")
        for acc in (account.account_id, other_account.account_id):
            base = users_path(acc, issuer_id)
            for method, path, body in [
                ("GET", base, None), ("POST", base, {**ADA, "username": "x@globex.example"}),
                ("GET", f"{base}/{user.id}", None), ("PATCH", f"{base}/{user.id}", {"profile": {}}),
                ("DELETE", f"{base}/{user.id}", None), ("GET", f"{base}/{user.id}/verifiers", None),
                ("POST", f"{base}/{user.id}/verifiers", {"type": "password", "password": "12345678"}),
                ("DELETE", f"{base}/{user.id}/verifiers/pwd_01jzzzzzzzzzzzzzzzzzzzzzzz", None),
            ]:
                resp = await client.request(method, path, json=body, auth=other_account.basic)
                assert resp.status_code == 404, (method, path, resp.text)
        assert await counts(pg, account.account_id, "users") == before

    async def test_user_of_issuer_x_is_404_under_issuer_y(self, admin: AuthPIAdmin, issuer_id: str,
                                                           second_issuer_id: str):
        user = await admin.issuer(issuer_id).users.create(ADA)
        for call in (admin.issuer(second_issuer_id).users.get(user.id),
                     admin.issuer(second_issuer_id).users.update(user.id, {"profile": {}}),
                     admin.issuer(second_issuer_id).users.delete(user.id),
                     admin.issuer(second_issuer_id).user(user.id).verifiers.list()):
            with pytest.raises(NotFoundError):
                await call


class TestDeleteUserMemberships:
    async def test_delete_removes_memberships_with_events(self, admin: AuthPIAdmin,
                                                          account: AccountCredentials, issuer_id: str,
                                                          pg: asyncpg.Pool):
        user = await admin.issuer(issuer_id).users.create(ADA)
        org = await admin.issuer(issuer_id).organizations.create({"name": "Globex Corp"})
        await admin.issuer(issuer_id).organization(org.id).members.create(
            {"member_id": user.id, "scopes": ["invoices:read"]})
        await admin.issuer(issuer_id).users.delete(user.id)
        assert await pg.fetchval("SELECT count(*) FROM memberships WHERE member_id = $1", user.id) == 0
        assert (await admin.issuer(issuer_id).organization(org.id).members.list()).data == []
        event = await last_event(pg, account.account_id, "organization.membership.deleted")
        assert (event["user_id"], event["org_id"]) == (user.id, org.id)
