"""Issuers through the official SDK: create (with keys), list, get, update, delete, isolation."""

from __future__ import annotations

import httpx
import pytest
from authpi_admin import AuthPIAdmin
from authpi_admin.errors import NotFoundError, PreconditionFailedError, ValidationError

from tests.conftest import AccountCredentials, count_rows


class TestCreateIssuer:
    async def test_quickstart_body_creates_issuer_and_keys(self, admin: AuthPIAdmin, pg,
                                                           account: AccountCredentials) -> None:
        issuer = await admin.issuers.create({"name": "acme-prod"})
        assert issuer.id.startswith("i_")
        assert issuer.account_id == account.account_id
        assert issuer.metadata.model_dump() == {}
        assert issuer.status == "active"
        rows = await pg.fetch("SELECT alg, status, private_key_encrypted, public_jwk FROM signing_keys "
                              "WHERE issuer_id = $1", issuer.id)
        assert sorted(r["alg"] for r in rows) == ["ES256", "RS256"]
        for r in rows:
            assert "PRIVATE" not in r["private_key_encrypted"]  # encrypted at rest
            assert '"d"' not in r["public_jwk"]
        page = await admin.events.list(event_types="issuer.created")
        assert [e.type for e in page.data] == ["issuer.created"]

    async def test_discovery_and_jwks_answer_at_once(self, admin: AuthPIAdmin,
                                                     client: httpx.AsyncClient) -> None:
        issuer = await admin.issuers.create({"name": "acme-prod"})
        disc = await client.get(f"/{issuer.id}/.well-known/openid-configuration")
        assert disc.status_code == 200
        doc = disc.json()
        assert doc["issuer"] == f"http://testserver/{issuer.id}"
        assert doc["jwks_uri"] == f"http://testserver/{issuer.id}/jwks.json"
        assert "RS256" in doc["id_token_signing_alg_values_supported"]
        assert doc["code_challenge_methods_supported"] == ["S256"]
        jwks = (await client.get(f"/{issuer.id}/jwks.json")).json()
        assert {k["alg"] for k in jwks["keys"]} == {"RS256", "ES256"}
        assert all("d" not in k for k in jwks["keys"])

    async def test_full_body(self, admin: AuthPIAdmin) -> None:
        issuer = await admin.issuers.create({
            "name": "full", "description": "d", "links": {"home": "https://x.example"},
            "available_scopes": ["invoices:read", "owner"], "metadata": {"team": "a"},
            "settings": {"access": {"mode": "private"}, "branding": {"color": "#fff"}}})
        assert issuer.available_scopes == ["invoices:read", "owner"]
        assert issuer.settings["access"] == {"mode": "private"}
        items = (await admin.issuers.list(access_mode="private")).data
        assert [i.id for i in items] == [issuer.id]
        assert items[0].branding_configured is True

    @pytest.mark.parametrize("body", [
        {},
        {"name": ""},
        {"name": "x", "nope": 1},
        {"name": "x", "available_scopes": ["not a scope"]},
        {"name": "x", "settings": {"branding": {}}},
        {"name": "x", "metadata": "str"},
        {"name": "x", "status": "weird"},
    ])
    async def test_bad_input_is_422_and_writes_nothing(self, admin: AuthPIAdmin, account: AccountCredentials,
                                                       pg, body) -> None:
        with pytest.raises(ValidationError) as err:
            await admin.issuers.create(body)
        assert err.value.fields
        assert await count_rows(pg, "issuers", account.account_id) == 0
        assert await count_rows(pg, "signing_keys", account.account_id) == 0


class TestListIssuers:
    async def test_newest_first_with_counts_and_filters(self, admin: AuthPIAdmin) -> None:
        a = await admin.issuers.create({"name": "alpha"})
        b = await admin.issuers.create({"name": "beta"})
        page = await admin.issuers.list()
        assert [i.id for i in page.data] == [b.id, a.id]
        item = page.data[0]
        assert item.readiness == "needs_client"
        assert item.access_mode == "public"
        assert item.enabled_login_method_count == 1
        assert [i.id for i in (await admin.issuers.list(q="alp")).data] == [a.id]
        await admin.issuer(a.id).clients.create({"name": "m2m", "settings": {
            "openid": {"application_type": "service", "grant_types": ["client_credentials"]}}})
        ready = await admin.issuers.list(readiness="ready")
        assert [i.id for i in ready.data] == [a.id]
        assert [i.id for i in (await admin.issuers.list(readiness="needs_client")).data] == [b.id]

    async def test_counts_the_issuers_auth_methods(self, admin: AuthPIAdmin) -> None:
        issuer = await admin.issuers.create({"name": "with-methods"})
        methods = admin.issuer(issuer.id).auth_methods
        await methods.create({"type": "password", "enabled": True})
        await methods.create({"type": "magic_link", "enabled": False})
        [item] = [i for i in (await admin.issuers.list()).data if i.id == issuer.id]
        assert item.auth_method_count == 2
        assert item.enabled_login_method_count == 1

    async def test_pagination(self, admin: AuthPIAdmin) -> None:
        ids = [(await admin.issuers.create({"name": f"n{i}"})).id for i in range(3)]
        first = await admin.issuers.list(limit=2)
        assert first.has_more
        assert first.next_cursor
        second = await admin.issuers.list(limit=2, cursor=first.next_cursor)
        assert [i.id for i in first.data + second.data] == list(reversed(ids))


class TestGetIssuer:
    async def test_get_sets_etag(self, admin: AuthPIAdmin) -> None:
        created = await admin.issuers.create({"name": "x"})
        got = await admin.issuers.get(created.id)
        assert got.id == created.id
        assert got._etag == f'"{got.updated_at or got.created_at}"'

    async def test_unknown_is_404(self, admin: AuthPIAdmin) -> None:
        with pytest.raises(NotFoundError):
            await admin.issuers.get("i_01jz0000000000000000000000")


class TestUpdateIssuer:
    async def test_update_and_event(self, admin: AuthPIAdmin) -> None:
        issuer = await admin.issuers.create({"name": "x"})
        updated = await admin.issuers.update(issuer.id, {"name": "y", "metadata": {"k": "v"},
                                                         "available_scopes": ["a:read"]})
        assert updated.name == "y"
        assert updated.metadata.model_dump() == {"k": "v"}
        assert updated.updated_at
        page = await admin.events.list(event_types="issuer.updated")
        assert len(page.data) == 1

    async def test_scopes_show_in_discovery(self, admin: AuthPIAdmin, client: httpx.AsyncClient) -> None:
        issuer = await admin.issuers.create({"name": "x"})
        await admin.issuers.update(issuer.id, {"available_scopes": ["reports:read"]})
        doc = (await client.get(f"/{issuer.id}/.well-known/openid-configuration")).json()
        assert "reports:read" in doc["scopes_supported"]

    async def test_stale_if_match(self, admin: AuthPIAdmin) -> None:
        issuer = await admin.issuers.create({"name": "x"})
        with pytest.raises(PreconditionFailedError):
            await admin.issuers.update(issuer.id, {"name": "y"}, if_match='"1"')

    async def test_bad_input(self, admin: AuthPIAdmin) -> None:
        issuer = await admin.issuers.create({"name": "x"})
        with pytest.raises(ValidationError):
            await admin.issuers.update(issuer.id, {"settings": {"portals": {}}})
        assert (await admin.issuers.get(issuer.id)).settings == issuer.settings


class TestDeleteIssuer:
    async def test_soft_delete_then_404_everywhere(self, admin: AuthPIAdmin, client: httpx.AsyncClient,
                                                   pg) -> None:
        issuer = await admin.issuers.create({"name": "x"})
        await admin.issuers.delete(issuer.id)
        with pytest.raises(NotFoundError):
            await admin.issuers.get(issuer.id)
        assert (await client.get(f"/{issuer.id}/.well-known/openid-configuration")).status_code == 404
        assert (await client.get(f"/{issuer.id}/jwks.json")).status_code == 404
        assert issuer.id not in [i.id for i in (await admin.issuers.list()).data]
        assert await pg.fetchval("SELECT status FROM issuers WHERE id = $1", issuer.id) == "deleted"
        assert len((await admin.events.list(event_types="issuer.deleted")).data) == 1


class TestIssuerIsolation:
    async def test_other_account_gets_404_on_every_route(self, admin: AuthPIAdmin, other_admin: AuthPIAdmin
                                                         ) -> None:
        issuer = await admin.issuers.create({"name": "mine"})
        for call in (
            lambda: other_admin.issuers.get(issuer.id),
            lambda: other_admin.issuers.update(issuer.id, {"name": "stolen"}),
            lambda: other_admin.issuers.delete(issuer.id),
        ):
            with pytest.raises(NotFoundError):
                await call()
        assert issuer.id not in [i.id for i in (await other_admin.issuers.list()).data]
        assert (await admin.issuers.get(issuer.id)).name == "mine"

    async def test_path_account_of_another_tenant(self, client: httpx.AsyncClient,
                                                  account: AccountCredentials,
                                                  other_account: AccountCredentials) -> None:
        r = await client.get(f"/v1/accounts/{other_account.account_id}/issuers", auth=account.basic)
        assert r.status_code == 404
