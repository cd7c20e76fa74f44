"""Upstream identity providers and organization OIDC connections, configured through the admin API:
the read-only redirect URI, the secret never shown, and every refusal (SAML, Apple, private URLs,
SSO without a connection) changing nothing."""

from __future__ import annotations

import json

import asyncpg
import httpx
import pytest
from authpi_admin import AuthPIAdmin
from fastapi import FastAPI

from tests.conftest import AccountCredentials, count_rows
from tests.fixtures.tenancy import last_event

SECRET = "upstream-secret-value-0123456789"
OIDC = {"issuer": "https://idp.example", "client_id": "authpi", "client_secret": SECRET}


def methods_path(account_id: str, issuer_id: str) -> str:
    return f"/v1/accounts/{account_id}/issuers/{issuer_id}/auth-methods"


def org_path(account_id: str, issuer_id: str, org_id: str) -> str:
    return f"/v1/accounts/{account_id}/issuers/{issuer_id}/organizations/{org_id}"


class TestUpstreamMethods:
    @pytest.mark.parametrize("type", ["oidc", "google", "microsoft", "github"])
    async def test_each_runnable_type_shows_its_redirect_uri_and_never_the_secret(
            self, admin: AuthPIAdmin, issuer_id: str, pg: asyncpg.Pool, type: str) -> None:
        settings = {"client_id": "authpi", "client_secret": SECRET}
        if type == "oidc":
            settings["issuer"] = "https://idp.example"
        methods = admin.issuer(issuer_id).auth_methods
        m = (await methods.create({"type": type, "settings": settings})).model_dump()
        assert m["enabled"] is True
        assert m["settings"]["redirect_uri"] == (
            f"http://testserver/{issuer_id}/login/federated/{m['id']}/callback")
        assert m["settings"]["client_secret_set"] is True
        assert SECRET not in json.dumps(m)
        row = await pg.fetchrow("SELECT settings::text AS s FROM issuer_auth_methods WHERE id = $1", m["id"])
        assert SECRET not in row["s"]
        assert "redirect_uri" not in row["s"]

    @pytest.mark.parametrize(("type", "word"), [("saml", "SAML"), ("apple", "Apple")])
    async def test_a_type_the_server_cannot_run_is_refused_when_enabled(
            self, client: httpx.AsyncClient, account: AccountCredentials, issuer_id: str,
            pg: asyncpg.Pool, type: str, word: str) -> None:
        before = await count_rows(pg, "events", account.account_id)
        r = await client.post(methods_path(account.account_id, issuer_id), auth=account.basic,
                              json={"type": type, "settings": {"client_id": "x", "client_secret": "y"}})
        assert r.status_code == 422, r.text
        assert word in r.json()["error_description"] or word in json.dumps(r.json())
        assert r.json()["fields"][0]["field"] == "enabled"
        assert await count_rows(pg, "issuer_auth_methods", account.account_id) == 0
        assert await count_rows(pg, "events", account.account_id) == before
        # Stored disabled it is accepted, and enabling it later is refused the same way.
        made = await client.post(methods_path(account.account_id, issuer_id), auth=account.basic,
                                 json={"type": type, "enabled": False})
        assert made.status_code == 201
        made_id = made.json()["data"]["id"]
        patched = await client.patch(f"{methods_path(account.account_id, issuer_id)}/{made_id}",
                                     auth=account.basic, json={"enabled": True})
        assert patched.status_code == 422
        assert (await pg.fetchval("SELECT enabled FROM issuer_auth_methods WHERE id = $1",
                                  made.json()["data"]["id"])) is False

    @pytest.mark.parametrize("settings", [
        {"client_id": "authpi", "client_secret": SECRET},  # no issuer to discover
        {"issuer": "https://idp.example", "client_secret": SECRET},  # no client id
        {"issuer": "https://idp.example", "client_id": "authpi"},  # no secret
        {**OIDC, "issuer": "ftp://idp.example"},
        {**OIDC, "scopes": "openid email"},
        {**OIDC, "discovery": "https://idp.example"},
    ])
    async def test_incomplete_or_bad_settings_are_422(self, client: httpx.AsyncClient,
                                                      account: AccountCredentials, issuer_id: str,
                                                      pg: asyncpg.Pool, settings: dict) -> None:
        r = await client.post(methods_path(account.account_id, issuer_id), auth=account.basic,
                              json={"type": "oidc", "settings": settings})
        assert r.status_code == 422, r.text
        assert r.json()["fields"][0]["field"].startswith("settings.")
        assert await count_rows(pg, "issuer_auth_methods", account.account_id) == 0

    @pytest.mark.parametrize("url", ["http://127.0.0.1:9/", "http://localhost/", "http://10.0.0.8/",
                                     "http://[::1]/", "http://169.254.169.254/"])
    async def test_private_upstream_urls_are_refused_unless_allowed(
            self, app: FastAPI, client: httpx.AsyncClient, account: AccountCredentials, issuer_id: str,
            pg: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch, url: str) -> None:
        monkeypatch.setattr(app.state.settings, "webhooks_allow_private", False)
        r = await client.post(methods_path(account.account_id, issuer_id), auth=account.basic,
                              json={"type": "oidc", "settings": {**OIDC, "issuer": url}})
        assert r.status_code == 422, r.text
        assert r.json()["fields"][0] == {"field": "settings.issuer", "code": "unsafe_url",
                                         "message": r.json()["fields"][0]["message"]}
        assert await count_rows(pg, "issuer_auth_methods", account.account_id) == 0
        monkeypatch.setattr(app.state.settings, "webhooks_allow_private", True)
        r = await client.post(methods_path(account.account_id, issuer_id), auth=account.basic,
                              json={"type": "oidc", "settings": {**OIDC, "issuer": url}})
        assert r.status_code == 201, r.text

    async def test_another_tenant_cannot_see_the_method(self, admin: AuthPIAdmin, other_admin: AuthPIAdmin,
                                                        issuer_id: str, other_issuer_id: str) -> None:
        from authpi_admin.errors import NotFoundError

        methods = admin.issuer(issuer_id).auth_methods
        m = (await methods.create({"type": "oidc", "settings": OIDC})).model_dump()
        with pytest.raises(NotFoundError):
            await other_admin.issuer(issuer_id).auth_methods.get(m["id"])
        with pytest.raises(NotFoundError):
            await other_admin.issuer(other_issuer_id).auth_methods.get(m["id"])


class TestOrganizationConnection:
    async def test_oidc_connection_shows_redirect_uri_never_the_secret(
            self, admin: AuthPIAdmin, account: AccountCredentials, issuer_id: str, pg: asyncpg.Pool) -> None:
        org = await admin.issuer(issuer_id).organizations.create({"name": "Initech"})
        updated = await admin.issuer(issuer_id).organizations.update(org.id, {"sso": {
            "enabled": True, "sso_only": False, "connection": {"type": "oidc", **OIDC}}})
        connection = updated.sso["connection"]
        assert connection["redirect_uri"] == f"http://testserver/{issuer_id}/login/federated/{org.id}/callback"
        assert connection["client_secret_set"] is True
        assert SECRET not in json.dumps(updated.model_dump())
        got = await admin.issuer(issuer_id).organizations.get(org.id)
        assert got.sso["connection"]["issuer"] == "https://idp.example"
        listed = (await admin.issuer(issuer_id).organizations.list()).data
        assert SECRET not in json.dumps([o.model_dump() for o in listed])
        row = await pg.fetchrow("SELECT sso::text AS s, sso_client_secret_encrypted AS e FROM organizations "
                                "WHERE id = $1", org.id)
        assert SECRET not in row["s"]
        assert SECRET not in row["e"]
        event = await last_event(pg, account.account_id, "organization.sso.enabled")
        assert json.loads(event["data"]) == {"enabled": True, "sso_only": False, "connection_type": "oidc"}
        # A later PATCH without the secret keeps it.
        again = await admin.issuer(issuer_id).organizations.update(org.id, {"sso": {
            "enabled": True, "sso_only": True, "connection": {"type": "oidc", "issuer": "https://idp.example",
                                                              "client_id": "authpi"}}})
        assert again.sso["connection"]["client_secret_set"] is True
        assert again.sso["sso_only"] is True

    @pytest.mark.parametrize(("sso", "field"), [
        ({"enabled": True, "connection": {"type": "saml", "idp_metadata_xml": "<EntityDescriptor/>"}},
         "sso.connection.type"),
        ({"enabled": True, "sso_only": True}, "sso.connection"),
        ({"enabled": True, "connection": {"type": "oidc", "client_id": "x", "client_secret": "y"}},
         "sso.connection.issuer"),
        ({"enabled": "yes"}, "sso.enabled"),
        ({"enabled": False, "mystery": 1}, "sso.mystery"),
    ])
    async def test_refusals_change_nothing(self, admin: AuthPIAdmin, client: httpx.AsyncClient,
                                           account: AccountCredentials, issuer_id: str, pg: asyncpg.Pool,
                                           sso: dict, field: str) -> None:
        org = await admin.issuer(issuer_id).organizations.create({"name": "Initech"})
        before = await count_rows(pg, "events", account.account_id)
        r = await client.patch(org_path(account.account_id, issuer_id, org.id), auth=account.basic,
                               json={"sso": sso})
        assert r.status_code == 422, r.text
        assert r.json()["fields"][0]["field"] == field
        if sso.get("connection", {}).get("type") == "saml":
            assert "SAML" in r.json()["error_description"]
        assert await pg.fetchval("SELECT sso::text FROM organizations WHERE id = $1", org.id) == "{}"
        assert await count_rows(pg, "events", account.account_id) == before
