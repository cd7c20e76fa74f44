"""Clients through the official SDK: create (secret once), list, get, update, delete, rotate, isolation."""

from __future__ import annotations

import pytest
from authpi_admin import AuthPIAdmin
from authpi_admin.errors import NotFoundError, PreconditionFailedError, ValidationError

from tests.conftest import AccountCredentials, count_rows

QUICKSTART_CLIENT = {
    "name": "acme-web",
    "type": "external",
    "confidential": True,
    "settings": {
        "protocol": "oidc",
        "scopes": ["openid", "profile"],
        "openid": {
            "application_type": "web",
            "grant_types": ["authorization_code", "refresh_token"],
            "redirect_uris": ["http://localhost:3000/api/auth/callback"],
        },
    },
}
M2M = {"name": "svc", "settings": {"scopes": ["invoices:read"], "openid": {
    "application_type": "service", "grant_types": ["client_credentials"]}}}


@pytest.fixture
async def issuer(admin: AuthPIAdmin):
    return await admin.issuers.create({"name": "acme-prod"})


class TestCreateClient:
    async def test_quickstart_body(self, admin: AuthPIAdmin, issuer, pg) -> None:
        created = await admin.issuer(issuer.id).clients.create(QUICKSTART_CLIENT)
        assert created.id.startswith("c_")
        assert created.secret
        assert len(created.secret) >= 40
        assert created.settings["openid"]["redirect_uris"] == ["http://localhost:3000/api/auth/callback"]
        row = await pg.fetchrow("SELECT secret_hash FROM clients WHERE id = $1", created.id)
        assert row["secret_hash"].startswith("$argon2id$")
        assert created.secret not in row["secret_hash"]
        events = (await admin.events.list(event_types="client.created")).data
        assert len(events) == 1
        assert created.secret not in str(events[0].model_dump())

    async def test_public_client_has_no_secret(self, admin: AuthPIAdmin, issuer) -> None:
        created = await admin.issuer(issuer.id).clients.create({
            "name": "cli", "confidential": False, "settings": {"openid": {
                "application_type": "native", "grant_types": ["authorization_code", "refresh_token"],
                "redirect_uris": ["http://127.0.0.1/callback", "com.example.app:/cb"]}}})
        assert created.secret is None
        assert created.confidential is False

    @pytest.mark.parametrize(("body", "field"), [
        ({"settings": {"openid": {"redirect_uris": ["/relative"]}}}, "settings.openid.redirect_uris.0"),
        ({"settings": {"openid": {"redirect_uris": ["https://a.example/cb#frag"]}}},
         "settings.openid.redirect_uris.0"),
        ({"settings": {"openid": {"grant_types": ["implicit"]}}}, "settings.openid.grant_types.0"),
        ({"settings": {"openid": {"grant_types": ["authorization_code"]}}}, "settings.openid.redirect_uris"),
        ({"settings": {"openid": {"application_type": "tv"}}}, "settings.openid.application_type"),
        ({"settings": {"scopes": ["bad scope"]}}, "settings.scopes.0"),
        ({"confidential": False, "settings": {"openid": {"grant_types": ["client_credentials"]}}},
         "settings.openid.grant_types"),
        ({"settings": {"openid": {"post_logout_redirect_uris": ["nope"]}}},
         "settings.openid.post_logout_redirect_uris.0"),
        ({"extra": 1}, "extra"),
    ])
    async def test_bad_input_is_422_with_fields(self, admin: AuthPIAdmin, account: AccountCredentials, issuer,
                                                pg, body, field) -> None:
        with pytest.raises(ValidationError) as err:
            await admin.issuer(issuer.id).clients.create({"name": "x", **body})
        assert field in [f["field"] for f in err.value.fields]
        assert await count_rows(pg, "clients", account.account_id) == 0


class TestListClients:
    async def test_list_items_and_filters(self, admin: AuthPIAdmin, issuer) -> None:
        web = await admin.issuer(issuer.id).clients.create(QUICKSTART_CLIENT)
        svc = await admin.issuer(issuer.id).clients.create(M2M)
        page = await admin.issuer(issuer.id).clients.list()
        assert [c.id for c in page.data] == [svc.id, web.id]
        item = page.data[1]
        assert item.protocol == "oidc"
        assert item.application_type == "web"
        assert item.redirect_uri_count == 1
        assert item.scopes == ["openid", "profile"]
        only = await admin.issuer(issuer.id).clients.list(application_type="service")
        assert [c.id for c in only.data] == [svc.id]
        assert [c.id for c in (await admin.issuer(issuer.id).clients.list(q="acme")).data] == [web.id]
        assert len((await admin.issuer(issuer.id).clients.list(readiness="ready")).data) == 2


class TestGetClient:
    async def test_never_returns_secret(self, admin: AuthPIAdmin, issuer) -> None:
        created = await admin.issuer(issuer.id).clients.create(QUICKSTART_CLIENT)
        got = await admin.issuer(issuer.id).clients.get(created.id)
        assert "secret" not in got.model_dump()
        assert got.secret_rotated_at

    async def test_client_of_another_issuer_is_404(self, admin: AuthPIAdmin, issuer) -> None:
        other = await admin.issuers.create({"name": "other"})
        created = await admin.issuer(issuer.id).clients.create(M2M)
        with pytest.raises(NotFoundError):
            await admin.issuer(other.id).clients.get(created.id)


class TestUpdateClient:
    async def test_update_settings_and_event(self, admin: AuthPIAdmin, issuer) -> None:
        created = await admin.issuer(issuer.id).clients.create(QUICKSTART_CLIENT)
        settings = {**QUICKSTART_CLIENT["settings"]}
        settings["openid"] = {**settings["openid"], "post_logout_redirect_uris": ["http://localhost:3000/"]}
        updated = await admin.issuer(issuer.id).clients.update(
            created.id, {"name": "web2", "settings": settings}, if_match=created._etag)
        assert updated.name == "web2"
        assert updated.settings["openid"]["post_logout_redirect_uris"] == ["http://localhost:3000/"]
        assert len((await admin.events.list(event_types="client.updated")).data) == 1

    async def test_stale_if_match(self, admin: AuthPIAdmin, issuer) -> None:
        created = await admin.issuer(issuer.id).clients.create(M2M)
        with pytest.raises(PreconditionFailedError):
            await admin.issuer(issuer.id).clients.update(created.id, {"name": "y"}, if_match='"1"')

    async def test_invalid_settings_change_nothing(self, admin: AuthPIAdmin, issuer) -> None:
        created = await admin.issuer(issuer.id).clients.create(M2M)
        with pytest.raises(ValidationError):
            await admin.issuer(issuer.id).clients.update(
                created.id, {"settings": {"openid": {"grant_types": ["authorization_code"]}}})
        assert (await admin.issuer(issuer.id).clients.get(created.id)).settings == created.settings


class TestDeleteClient:
    async def test_delete_then_404(self, admin: AuthPIAdmin, issuer, pg) -> None:
        created = await admin.issuer(issuer.id).clients.create(M2M)
        await admin.issuer(issuer.id).clients.delete(created.id)
        with pytest.raises(NotFoundError):
            await admin.issuer(issuer.id).clients.get(created.id)
        assert await pg.fetchval("SELECT secret_hash FROM clients WHERE id = $1", created.id) is None
        assert len((await admin.events.list(event_types="client.deleted")).data) == 1


class TestRotateClientSecret:
    async def test_rotate_returns_new_secret_once(self, admin: AuthPIAdmin, issuer, pg) -> None:
        created = await admin.issuer(issuer.id).clients.create(M2M)
        rotated = await admin.issuer(issuer.id).clients.rotate_secret(created.id)
        assert rotated.secret
        assert rotated.secret != created.secret
        events = (await admin.events.list(event_types="client.secret.rotated")).data
        assert len(events) == 1
        assert rotated.secret not in str(events[0].model_dump())

    async def test_public_client_cannot_rotate(self, admin: AuthPIAdmin, issuer) -> None:
        created = await admin.issuer(issuer.id).clients.create({
            "name": "spa", "confidential": False, "settings": {"openid": {
                "grant_types": ["authorization_code"], "redirect_uris": ["https://app.example/cb"]}}})
        with pytest.raises(ValidationError):
            await admin.issuer(issuer.id).clients.rotate_secret(created.id)


class TestClientIsolation:
    async def test_other_account_gets_404_on_every_route(self, admin: AuthPIAdmin, other_admin: AuthPIAdmin,
                                                         issuer) -> None:
        created = await admin.issuer(issuer.id).clients.create(M2M)
        clients = other_admin.issuer(issuer.id).clients
        for call in (
            lambda: clients.list(),
            lambda: clients.create(M2M),
            lambda: clients.get(created.id),
            lambda: clients.update(created.id, {"name": "stolen"}),
            lambda: clients.delete(created.id),
            lambda: clients.rotate_secret(created.id),
        ):
            with pytest.raises(NotFoundError):
                await call()
        assert (await admin.issuer(issuer.id).clients.get(created.id)).name == "svc"
