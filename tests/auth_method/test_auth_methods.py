"""Issuer auth methods through the official SDK and raw HTTP: CRUD, singleton types, the upstream
client secret kept encrypted, events, isolation."""

from __future__ import annotations

import json

import asyncpg
import httpx
import pytest
from authpi_admin import AuthPIAdmin
from authpi_admin.errors import ConflictError, NotFoundError, PreconditionFailedError

from tests.conftest import AccountCredentials, count_rows
from tests.fixtures.tenancy import event_types, last_event


def methods_path(account_id: str, issuer_id: str) -> str:
    return f"/v1/accounts/{account_id}/issuers/{issuer_id}/auth-methods"


class TestCreateAuthMethod:
    async def test_create_password(self, admin: AuthPIAdmin, account: AccountCredentials, issuer_id: str,
                                   pg: asyncpg.Pool):
        m = await admin.issuer(issuer_id).auth_methods.create(
            {"type": "password", "enabled": True, "settings": {"min_length": 12}})
        data = m.model_dump()
        assert data["id"].startswith("am_")
        assert (data["type"], data["enabled"], data["issuer_id"]) == ("password", True, issuer_id)
        assert data["settings"] == {"min_length": 12}
        row = await pg.fetchrow("SELECT * FROM issuer_auth_methods WHERE id = $1", data["id"])
        assert (row["account_id"], row["issuer_id"]) == (account.account_id, issuer_id)
        event = await last_event(pg, account.account_id, "issuer.auth-method.created")
        assert json.loads(event["subject"]) == {"type": "auth_method", "id": data["id"]}
        assert json.loads(event["data"]) == {"type": "password", "enabled": True}

    async def test_first_party_types_are_singletons(self, admin: AuthPIAdmin, issuer_id: str,
                                                    second_issuer_id: str):
        await admin.issuer(issuer_id).auth_methods.create({"type": "magic_link"})
        with pytest.raises(ConflictError):
            await admin.issuer(issuer_id).auth_methods.create({"type": "magic_link"})
        await admin.issuer(second_issuer_id).auth_methods.create({"type": "magic_link"})
        # Upstream providers may repeat.
        for name in ("Okta", "Entra"):
            await admin.issuer(issuer_id).auth_methods.create(
                {"type": "oidc", "name": name, "enabled": False,
                 "settings": {"issuer": "https://idp.example"}})

    async def test_client_secret_is_encrypted_and_never_returned(self, admin: AuthPIAdmin,
                                                                 account: AccountCredentials,
                                                                 issuer_id: str, pg: asyncpg.Pool):
        secret = "upstream-client-secret-value-123"
        m = await admin.issuer(issuer_id).auth_methods.create(
            {"type": "oidc", "settings": {"client_id": "abc", "client_secret": secret,
                                          "issuer": "https://idp.example"}})
        data = m.model_dump()
        assert data["settings"] == {
            "client_id": "abc", "issuer": "https://idp.example", "client_secret_set": True,
            "redirect_uri": f"http://testserver/{issuer_id}/login/federated/{data['id']}/callback"}
        row = await pg.fetchrow("SELECT * FROM issuer_auth_methods WHERE id = $1", data["id"])
        assert secret not in json.dumps(row["settings"])
        assert secret not in row["secret_encrypted"]
        got = await admin.issuer(issuer_id).auth_methods.get(data["id"])
        assert secret not in json.dumps(got.model_dump())
        events = await pg.fetch("SELECT data::text AS d FROM events WHERE account_id = $1",
                                account.account_id)
        assert all(secret not in e["d"] for e in events)

    @pytest.mark.parametrize("body", [
        {}, {"type": "carrier_pigeon"}, {"type": "password", "enabled": "yes"},
        {"type": "password", "settings": []}, {"type": "password", "extra": 1},
        {"type": "password", "settings": {"client_secret": "x"}},
        {"type": "oidc", "settings": {"client_secret": 5}},
    ])
    async def test_bad_input_is_422_and_writes_nothing(self, client: httpx.AsyncClient,
                                                       account: AccountCredentials, issuer_id: str,
                                                       pg: asyncpg.Pool, body: dict):
        before = await count_rows(pg, "events", account.account_id)
        resp = await client.post(methods_path(account.account_id, issuer_id), json=body, auth=account.basic)
        assert resp.status_code == 422, resp.text
        assert resp.json()["fields"]
        assert await count_rows(pg, "issuer_auth_methods", account.account_id) == 0
        assert await count_rows(pg, "events", account.account_id) == before


class TestListAuthMethods:
    async def test_lists_all_in_one_page(self, admin: AuthPIAdmin, issuer_id: str, second_issuer_id: str):
        a = await admin.issuer(issuer_id).auth_methods.create({"type": "password"})
        b = await admin.issuer(issuer_id).auth_methods.create({"type": "email_otp", "enabled": False})
        await admin.issuer(second_issuer_id).auth_methods.create({"type": "passkey"})
        page = await admin.issuer(issuer_id).auth_methods.list()
        assert [m.model_dump()["id"] for m in page.data] == [a.model_dump()["id"], b.model_dump()["id"]]
        assert page.has_more is False


class TestUpdateAuthMethod:
    async def test_update_and_etag(self, admin: AuthPIAdmin, account: AccountCredentials, issuer_id: str,
                                   pg: asyncpg.Pool):
        m = await admin.issuer(issuer_id).auth_methods.create({"type": "password"})
        mid = m.model_dump()["id"]
        updated = await admin.issuer(issuer_id).auth_methods.update(
            mid, {"enabled": False, "settings": {"min_length": 16}}, if_match=m._etag)
        assert updated.model_dump()["enabled"] is False
        assert updated.model_dump()["settings"] == {"min_length": 16}
        with pytest.raises(PreconditionFailedError):
            await admin.issuer(issuer_id).auth_methods.update(mid, {"enabled": True}, if_match=m._etag)
        event = await last_event(pg, account.account_id, "issuer.auth-method.updated")
        assert json.loads(event["data"])["changed"] == ["enabled", "settings"]

    async def test_type_cannot_change(self, client: httpx.AsyncClient, admin: AuthPIAdmin,
                                      account: AccountCredentials, issuer_id: str, pg: asyncpg.Pool):
        m = await admin.issuer(issuer_id).auth_methods.create({"type": "password"})
        before = await count_rows(pg, "events", account.account_id)
        resp = await client.patch(f"{methods_path(account.account_id, issuer_id)}/{m.model_dump()['id']}",
                                  json={"type": "oidc"}, auth=account.basic)
        assert resp.status_code == 422
        assert await count_rows(pg, "events", account.account_id) == before


class TestDeleteAuthMethod:
    async def test_delete_then_404(self, admin: AuthPIAdmin, account: AccountCredentials, issuer_id: str,
                                   pg: asyncpg.Pool):
        m = await admin.issuer(issuer_id).auth_methods.create({"type": "password"})
        mid = m.model_dump()["id"]
        await admin.issuer(issuer_id).auth_methods.delete(mid, if_match=m._etag)
        with pytest.raises(NotFoundError):
            await admin.issuer(issuer_id).auth_methods.get(mid)
        assert await count_rows(pg, "issuer_auth_methods", account.account_id) == 0
        assert (await event_types(pg, account.account_id))[-2:] == [
            "issuer.auth-method.created", "issuer.auth-method.deleted"]
        # The singleton is free again.
        await admin.issuer(issuer_id).auth_methods.create({"type": "password"})


class TestAuthMethodIsolation:
    async def test_other_account_gets_404_on_every_route(self, admin: AuthPIAdmin, client: httpx.AsyncClient,
                                                         account: AccountCredentials,
                                                         other_account: AccountCredentials, issuer_id: str):
        mid = (await admin.issuer(issuer_id).auth_methods.create({"type": "password"})).model_dump()["id"]
        for acc in (account.account_id, other_account.account_id):
            base = methods_path(acc, issuer_id)
            for method, path, body in [
                ("GET", base, None), ("POST", base, {"type": "email_otp"}), ("GET", f"{base}/{mid}", None),
                ("PATCH", f"{base}/{mid}", {"enabled": False}), ("DELETE", f"{base}/{mid}", None),
            ]:
                resp = await client.request(method, path, json=body, auth=other_account.basic)
                assert resp.status_code == 404, (method, path, resp.text)

    async def test_method_of_issuer_x_is_404_under_issuer_y(self, admin: AuthPIAdmin, issuer_id: str,
                                                            second_issuer_id: str):
        mid = (await admin.issuer(issuer_id).auth_methods.create({"type": "password"})).model_dump()["id"]
        other = admin.issuer(second_issuer_id).auth_methods
        for call in (other.get(mid), other.update(mid, {"enabled": False}), other.delete(mid)):
            with pytest.raises(NotFoundError):
                await call


class TestAuthMethodScopes:
    async def test_issuer_read_scope_cannot_write(self, admin: AuthPIAdmin, client: httpx.AsyncClient,
                                                  account: AccountCredentials, issuer_id: str):
        key = await admin.api_keys.create({"name": "ro", "restrictions": {"scopes": ["issuers:read"]}})
        basic = (key.id, key.secret_plain)
        base = methods_path(account.account_id, issuer_id)
        assert (await client.get(base, auth=basic)).status_code == 200
        assert (await client.post(base, json={"type": "password"}, auth=basic)).status_code == 403
