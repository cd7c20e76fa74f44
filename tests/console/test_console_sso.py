"""Enterprise SSO on the console's organization page: the same `update_organization` call and body model
as `PATCH {O}` with `sso`, read back through the official SDK; the client secret never appears in a
page; every refusal shows why and changes nothing (the row and the trail compared before and after)."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import httpx
import pytest
from authpi_admin import AuthPIAdmin
from fastapi import FastAPI

from tests.conftest import AccountCredentials, count_rows
from tests.console.helpers import csrf_of, post_form, sign_in
from tests.fixtures.tenancy import last_event

SECRET = "idp-client-secret-4f8Qz7"
FORM = {
    "sso.enabled": "true",
    "sso.connection.type": "oidc",
    "sso.connection.issuer": "https://idp.globex.example",
    "sso.connection.client_id": "authpi-console",
    "sso.connection.client_secret": SECRET,
    "sso.connection.scopes": "openid\nemail",
}


@pytest.fixture
async def org(admin: AuthPIAdmin) -> dict[str, str]:
    issuer = await admin.issuers.create({"name": "sso-issuer"})
    org = await admin.issuer(issuer.id).organizations.create({"name": "Globex"})
    return {"issuer": issuer.id, "org": org.id, "url": f"/console/issuers/{issuer.id}/organizations/{org.id}"}


async def snapshot(pg: asyncpg.Pool, account_id: str, org_id: str) -> tuple[Any, ...]:
    """The organization's row as stored (its sso, secret and version) and the account's event count."""
    row = await pg.fetchrow(
        "SELECT sso::text AS sso, sso_client_secret_encrypted AS secret, updated_at FROM organizations "
        "WHERE id = $1", org_id)
    assert row is not None
    return (row["sso"], row["secret"], row["updated_at"], await count_rows(pg, "events", account_id))


async def test_configure_read_back_keep_the_secret_and_disable(
    console: httpx.AsyncClient, admin: AuthPIAdmin, pg: asyncpg.Pool, account: AccountCredentials,
    org: dict[str, str],
) -> None:
    page = await console.get(org["url"])
    assert "Enterprise SSO" in page.text
    redirect = f"http://testserver/{org['issuer']}/login/federated/{org['org']}/callback"
    assert redirect in page.text  # to register at the IdP before the connection exists

    r = await post_form(console, org["url"], org["url"] + "/sso", FORM)
    assert r.status_code == 303, r.text
    assert "Enterprise SSO enabled." in (await console.get(r.headers["location"])).text
    got = (await admin.issuer(org["issuer"]).organizations.get(org["org"])).sso
    assert got is not None
    assert got["enabled"] is True
    assert got["sso_only"] is False
    assert got["connection"] == {
        "type": "oidc", "issuer": "https://idp.globex.example", "client_id": "authpi-console",
        "scopes": ["openid", "email"], "client_secret_set": True, "redirect_uri": redirect,
    }
    event = await last_event(pg, account.account_id, "organization.sso.enabled")
    assert json.loads(event["data"]) == {"enabled": True, "sso_only": False, "connection_type": "oidc"}
    assert json.loads(event["auth"])["key_id"] == account.key_id
    page = await console.get(org["url"])
    assert SECRET not in page.text
    assert "authpi-console" in page.text
    assert redirect in page.text
    assert 'data-copy="c-redirect-URI"' in page.text
    # The form starts from the stored settings (never the secret).
    assert 'name="sso.enabled" value="true" checked' in page.text
    assert '>openid\nemail</textarea>' in page.text
    assert 'name="sso.connection.client_secret" value=""' in page.text
    stored = await pg.fetchrow("SELECT sso::text AS sso, sso_client_secret_encrypted AS secret "
                               "FROM organizations WHERE id = $1", org["org"])
    assert SECRET not in stored["sso"]

    # An empty secret field keeps the stored secret.
    again = await post_form(console, org["url"], org["url"] + "/sso",
                            {**FORM, "sso.connection.client_secret": "", "sso.sso_only": "true"})
    assert again.status_code == 303, again.text
    got = (await admin.issuer(org["issuer"]).organizations.get(org["org"])).sso
    assert got is not None
    assert got["sso_only"] is True
    assert got["connection"]["client_secret_set"] is True
    assert await pg.fetchval("SELECT sso_client_secret_encrypted FROM organizations WHERE id = $1",
                             org["org"]) == stored["secret"]
    assert (await last_event(pg, account.account_id, "organization.sso.updated"))["org_id"] == org["org"]

    off = await post_form(console, org["url"], org["url"] + "/sso/disable", {})
    assert off.status_code == 303
    got = (await admin.issuer(org["issuer"]).organizations.get(org["org"])).sso
    assert got is not None
    assert got["enabled"] is False
    assert got["sso_only"] is False
    assert got["connection"]["issuer"] == "https://idp.globex.example"  # kept, to enable again
    await last_event(pg, account.account_id, "organization.sso.disabled")
    page = await console.get(org["url"])
    assert "Disable SSO" not in page.text
    assert SECRET not in page.text


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"sso.connection.issuer": "http://127.0.0.1:9/"}, "sso-connection-issuer",
     "issuer must not target a private, loopback or link-local address"),
    ({"sso.connection.type": "saml"}, "sso-connection-type", "SAML connections are not supported"),
    ({"sso.connection.client_secret": ""}, "sso-connection-client_secret",
     "client_secret is required to enable this provider"),
])
async def test_an_invalid_setting_shows_the_apis_error_and_changes_nothing(
    app: FastAPI, console: httpx.AsyncClient, client: httpx.AsyncClient, pg: asyncpg.Pool,
    account: AccountCredentials, org: dict[str, str], monkeypatch: pytest.MonkeyPatch,
    change: dict[str, str], field: str, message: str,
) -> None:
    monkeypatch.setattr(app.state.settings, "webhooks_allow_private", False)
    before = await snapshot(pg, account.account_id, org["org"])
    r = await post_form(console, org["url"], org["url"] + "/sso", {**FORM, **change})
    assert r.status_code == 422, r.text
    assert f'id="f-{field}-err"' in r.text
    assert message in r.text
    assert SECRET not in r.text  # the typed secret is not echoed back
    assert await snapshot(pg, account.account_id, org["org"]) == before
    # The API answers the same body with the same message.
    body: dict[str, Any] = {"enabled": True, "connection": {
        "type": change.get("sso.connection.type", "oidc"),
        "issuer": change.get("sso.connection.issuer", FORM["sso.connection.issuer"]),
        "client_id": "authpi-console", "scopes": ["openid", "email"]}}
    if change.get("sso.connection.client_secret", SECRET):
        body["connection"]["client_secret"] = SECRET
    api = await client.patch(f"/v1/accounts/{account.account_id}/issuers/{org['issuer']}/organizations/"
                             f"{org['org']}", json={"sso": body}, auth=account.basic)
    assert api.status_code == 422
    assert api.json()["fields"][0]["message"] in r.text


async def test_a_key_without_the_write_scope_sees_no_form_and_changes_nothing(
    browser: httpx.AsyncClient, admin: AuthPIAdmin, pg: asyncpg.Pool, account: AccountCredentials,
    org: dict[str, str],
) -> None:
    await admin.issuer(org["issuer"]).organizations.update(org["org"], {"sso": {
        "enabled": True, "connection": {"type": "oidc", "issuer": "https://idp.globex.example",
                                        "client_id": "c", "client_secret": SECRET}}})
    reader = await admin.api_keys.create({"type": "api_key", "name": "reader", "restrictions": {
        "scopes": ["issuers:read", "issuers.organizations:read"]}})
    assert (await sign_in(browser, reader.id, reader.secret_plain)).status_code == 303
    page = await browser.get(org["url"])
    assert page.status_code == 200
    assert "Enterprise SSO" in page.text
    assert "https://idp.globex.example" in page.text
    assert "Save SSO" not in page.text
    assert "Disable SSO" not in page.text
    assert SECRET not in page.text
    before = await snapshot(pg, account.account_id, org["org"])
    csrf = csrf_of(page.text)
    posts = ((org["url"] + "/sso", {**FORM, "sso.enabled": ""}), (org["url"] + "/sso/disable", {}))
    for action, data in posts:
        r = await browser.post(action, data={"csrf": csrf, **data})
        assert r.status_code == 403, action
        assert "issuers.organizations:write" in r.text
    assert await snapshot(pg, account.account_id, org["org"]) == before


@pytest.mark.parametrize("csrf", [None, "forged-token"])
async def test_a_missing_or_wrong_csrf_token_changes_nothing(
    console: httpx.AsyncClient, pg: asyncpg.Pool, account: AccountCredentials, org: dict[str, str],
    csrf: str | None,
) -> None:
    before = await snapshot(pg, account.account_id, org["org"])
    data = FORM if csrf is None else {**FORM, "csrf": csrf}
    r = await console.post(org["url"] + "/sso", data=data)
    assert r.status_code == 403
    assert "CSRF" in r.text
    assert "Nothing was changed" in r.text
    assert await snapshot(pg, account.account_id, org["org"]) == before


async def test_another_accounts_organization_is_not_found_and_untouched(
    console: httpx.AsyncClient, other_admin: AuthPIAdmin, other_account: AccountCredentials,
    pg: asyncpg.Pool,
) -> None:
    theirs = await other_admin.issuers.create({"name": "their-issuer"})
    their_org = await other_admin.issuer(theirs.id).organizations.create({"name": "Theirs"})
    before = await snapshot(pg, other_account.account_id, their_org.id)
    csrf = csrf_of((await console.get("/console")).text)
    r = await console.post(f"/console/issuers/{theirs.id}/organizations/{their_org.id}/sso",
                           data={"csrf": csrf, **FORM})
    assert r.status_code == 404
    assert await snapshot(pg, other_account.account_id, their_org.id) == before
