"""Each console page's actions, through the same services as the API: the official SDK sees the result
and the trail has the usual event, recorded as the operator's key."""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import httpx
import pytest
from authpi_admin import AuthPIAdmin
from fastapi import FastAPI

from app.session.service import create_login_session
from tests.conftest import AccountCredentials
from tests.console.helpers import csrf_of, post_form

SECRET = re.compile(r'<code id="c-secret">([^<]+)</code>')


async def event_types(pg: asyncpg.Pool, account_id: str, subject_id: str) -> list[str]:
    rows = await pg.fetch(
        "SELECT type FROM events WHERE account_id = $1 AND subject->>'id' = $2 ORDER BY id",
        account_id,
        subject_id,
    )
    return [r["type"] for r in rows]


@pytest.fixture
async def setup(admin: AuthPIAdmin) -> dict[str, Any]:
    issuer = await admin.issuers.create({"name": "pages-issuer"})
    org = await admin.issuer(issuer.id).organizations.create({"name": "Globex"})
    user = await admin.issuer(issuer.id).users.create(
        {"username_type": "email", "username": "bo@globex.example"}
    )
    return {
        "issuer": issuer.id,
        "org": org.id,
        "user": user.id,
        "org_url": f"/console/issuers/{issuer.id}/organizations/{org.id}",
    }


async def test_issuer_settings_branding_and_scopes(console: httpx.AsyncClient, admin: AuthPIAdmin, setup):  # noqa: ANN001
    url = f"/console/issuers/{setup['issuer']}"
    bad = await post_form(
        console, url, url + "/settings", {"name": "pages-issuer", "available_scopes": "bad scope"}
    )
    assert bad.status_code == 422
    assert 'id="f-available_scopes-err"' in bad.text
    ok = await post_form(
        console,
        url,
        url + "/settings",
        {
            "name": "renamed",
            "available_scopes": "invoices:read",
            "branding.title": "Welcome to Globex",
            "branding.primary_color": "#112233",
        },
    )
    assert ok.status_code == 303
    issuer = await admin.issuers.get(setup["issuer"])
    assert issuer.name == "renamed"
    assert issuer.available_scopes == ["invoices:read"]
    assert issuer.settings["branding"] == {"title": "Welcome to Globex", "primary_color": "#112233"}
    page = await console.get(url)
    assert "Welcome to Globex" in page.text  # the preview starts from the saved branding


async def test_rotate_signing_keys(
    console: httpx.AsyncClient, pg: asyncpg.Pool, account: AccountCredentials, setup
):  # noqa: ANN001
    url = f"/console/issuers/{setup['issuer']}"
    before = await pg.fetchval("SELECT count(*) FROM signing_keys WHERE issuer_id = $1", setup["issuer"])
    response = await post_form(console, url, url + "/signing-keys/rotate", {})
    assert response.status_code == 303
    assert "rotated" in (await console.get(response.headers["location"])).text
    assert (
        await pg.fetchval("SELECT count(*) FROM signing_keys WHERE issuer_id = $1", setup["issuer"]) > before
    )
    assert "issuer.signing-key.rotated" in await pg.fetchval(
        "SELECT string_agg(type, ',') FROM events WHERE account_id = $1", account.account_id
    )


async def test_client_rotate_secret(
    console: httpx.AsyncClient, admin: AuthPIAdmin, pg: asyncpg.Pool, account: AccountCredentials, setup
):  # noqa: ANN001
    client = await admin.issuer(setup["issuer"]).clients.create({"name": "svc", "confidential": True})
    url = f"/console/issuers/{setup['issuer']}"
    response = await post_form(console, url, f"{url}/clients/{client.id}/rotate-secret", {})
    assert response.status_code == 200
    assert SECRET.search(response.text)
    assert "client.secret.rotated" in await event_types(pg, account.account_id, client.id)


async def test_organization_groups_invitations_and_domains(
    console: httpx.AsyncClient, admin: AuthPIAdmin, pg: asyncpg.Pool, account: AccountCredentials, setup
):  # noqa: ANN001
    org_url = setup["org_url"]
    r = await post_form(
        console, org_url, org_url + "/groups/new", {"group.name": "admins", "group.scopes": "invoices:write"}
    )
    assert r.status_code == 303
    groups = (await admin.issuer(setup["issuer"]).organization(setup["org"]).groups.list()).data
    assert [(g.name, g.scopes) for g in groups] == [("admins", ["invoices:write"])]
    bad = await post_form(
        console, org_url, org_url + "/groups/new", {"group.name": "x", "group.scopes": "nope"}
    )
    assert bad.status_code == 422
    assert 'id="f-group-scopes-err"' in bad.text

    r = await post_form(
        console,
        org_url,
        org_url + "/invitations/new",
        {"email": "new@globex.example", "invitation.scopes": "invoices:read"},
    )
    assert r.status_code == 303
    invitations = (await admin.issuer(setup["issuer"]).organization(setup["org"]).invitations.list()).data
    [inv] = invitations
    assert inv.status == "pending"
    r = await post_form(console, org_url, f"{org_url}/invitations/{inv.id}/resend", {})
    assert "sent again" in (await console.get(r.headers["location"])).text
    r = await post_form(console, org_url, f"{org_url}/invitations/{inv.id}/revoke", {})
    assert r.status_code == 303
    [inv] = (await admin.issuer(setup["issuer"]).organization(setup["org"]).invitations.list()).data
    assert inv.status == "revoked"
    types = await event_types(pg, account.account_id, inv.id)
    assert types[0] == "organization.invitation.created"
    assert "organization.invitation.resent" in types
    assert "organization.invitation.revoked" in types

    bad = await post_form(console, org_url, org_url + "/domains/new", {"domain": "not a domain"})
    assert bad.status_code == 422
    assert 'id="f-domain-err"' in bad.text
    r = await post_form(console, org_url, org_url + "/domains/new", {"domain": "globex.example"})
    assert r.status_code == 303
    page = await console.get(org_url)
    assert "globex.example" in page.text
    r = await post_form(console, org_url, org_url + "/domains/globex.example/remove", {})
    assert r.status_code == 303
    assert await pg.fetchval("SELECT count(*) FROM organization_domains WHERE org_id = $1", setup["org"]) == 0


async def test_organization_key_block_unblock_rotate_revoke(
    app: FastAPI, console: httpx.AsyncClient, admin: AuthPIAdmin, setup
):  # noqa: ANN001
    org_url = setup["org_url"]
    created = await post_form(console, org_url, org_url + "/api-keys/new", {"name": "backend"})
    key_id = re.search(r"<code>(key_[0-9a-z]+)</code>", created.text).group(1)  # type: ignore[union-attr]
    keys_resource = admin.issuer(setup["issuer"]).organization(setup["org"]).api_keys

    class _Keys:
        async def get(self, key_id: str) -> Any:
            return next(k for k in (await keys_resource.list()).data if k.id == key_id)

    keys = _Keys()
    for verb, status in (("block", "blocked"), ("unblock", "active")):
        r = await post_form(console, org_url, f"{org_url}/api-keys/{key_id}/{verb}", {})
        assert r.status_code == 303
        assert (await keys.get(key_id)).status == status
    rotated = await post_form(console, org_url, f"{org_url}/api-keys/{key_id}/rotate", {})
    new_secret = SECRET.search(rotated.text).group(1)  # type: ignore[union-attr]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        assert (await http.get("/v1/me", auth=(key_id, new_secret))).status_code == 200
        r = await post_form(console, org_url, f"{org_url}/api-keys/{key_id}/revoke", {})
        assert r.status_code == 303
        assert (await keys.get(key_id)).status == "revoked"
        assert (await http.get("/v1/me", auth=(key_id, new_secret))).status_code == 401
    # A revoked key has no actions left; posting one anyway is refused with the service's message.
    again = await post_form(console, org_url, f"{org_url}/api-keys/{key_id}/block", {})
    assert "revoked" in (await console.get(again.headers["location"])).text


async def test_user_block_sessions_and_devices(
    app: FastAPI, console: httpx.AsyncClient, admin: AuthPIAdmin, account: AccountCredentials, setup
):  # noqa: ANN001
    url = f"/console/issuers/{setup['issuer']}/users/{setup['user']}"
    r = await post_form(console, url, url + "/status", {"status": "blocked"})
    assert r.status_code == 303
    assert (await admin.issuer(setup["issuer"]).users.get(setup["user"])).status == "blocked"
    await post_form(console, url, url + "/status", {"status": "active"})
    async with app.state.db.unit_of_work() as session:
        row, _ = await create_login_session(
            session,
            server_key=app.state.secret_key,
            account_id=account.account_id,
            issuer_id=setup["issuer"],
            user_id=setup["user"],
            origin=None,
            user_agent="test",
        )
    page = await console.get(url)
    assert row.id in page.text
    r = await post_form(console, url, f"{url}/sessions/{row.id}/revoke", {})
    assert "revoked" in (await console.get(r.headers["location"])).text
    assert (await admin.issuer(setup["issuer"]).sessions.get(row.id)).status == "revoked"


async def test_webhook_create_pause_resume(console: httpx.AsyncClient, admin: AuthPIAdmin):
    bad = await post_form(
        console,
        "/console/webhooks/new",
        "/console/webhooks/new",
        {"name": "h", "url": "http://127.0.0.1:9/h", "events": "not.a.type"},
    )
    assert bad.status_code == 422
    created = await post_form(
        console,
        "/console/webhooks/new",
        "/console/webhooks/new",
        {"name": "h", "url": "http://127.0.0.1:9/h", "events": "user.created"},
    )
    assert SECRET.search(created.text).group(1).startswith("whsec_")  # type: ignore[union-attr]
    [hook] = (await admin.webhooks.list()).data
    url = f"/console/webhooks/{hook.id}"
    await post_form(console, url, url + "/status", {"status": "paused"})
    assert (await admin.webhooks.get(hook.id)).status == "paused"
    await post_form(console, url, url + "/status", {"status": "active"})
    assert (await admin.webhooks.get(hook.id)).status == "active"


async def test_account_keys_and_their_scope_ceiling(
    console: httpx.AsyncClient, admin: AuthPIAdmin, account: AccountCredentials
):
    created = await post_form(
        console,
        "/console/api-keys",
        "/console/api-keys/new",
        {"name": "ci", "restrictions.scopes": "events:read"},
    )
    key_id = re.search(r"<code>(key_[0-9a-z]+)</code>", created.text).group(1)  # type: ignore[union-attr]
    assert (await admin.api_keys.get(key_id)).restrictions["scopes"] == ["events:read"]
    r = await post_form(console, "/console/api-keys", f"/console/api-keys/{key_id}/block", {})
    assert r.status_code == 303
    assert (await admin.api_keys.get(key_id)).status == "blocked"
    blocked = await console.get("/console/api-keys?status=blocked")
    assert key_id in blocked.text
    assert account.key_id not in blocked.text.split("<tbody>")[1]
    assert (await console.get("/console/api-keys?status=bogus")).status_code == 422
    bad = await post_form(
        console,
        "/console/api-keys",
        "/console/api-keys/new",
        {"name": "x", "restrictions.scopes": "not-a-scope"},
    )
    assert bad.status_code == 422


async def test_agents_and_verifiers(console: httpx.AsyncClient, admin: AuthPIAdmin, setup):  # noqa: ANN001
    new = f"/console/issuers/{setup['issuer']}/agents/new"
    r = await post_form(console, new, new, {"name": "billing-bot", "scopes": "invoices:read"})
    assert r.status_code == 303
    agent_url = r.headers["location"]
    agent_id = agent_url.rsplit("/", 1)[1]
    added = await post_form(console, agent_url, agent_url + "/verifiers/new", {"name": "primary"})
    assert SECRET.search(added.text)
    verifiers = (await admin.issuer(setup["issuer"]).agent(agent_id).verifiers.list()).data
    assert len(verifiers) == 1
    r = await post_form(console, agent_url, f"{agent_url}/verifiers/{verifiers[0].id}/remove", {})
    assert r.status_code == 303
    assert (await admin.issuer(setup["issuer"]).agent(agent_id).verifiers.list()).data == []


async def test_events_filters_json_and_tail(console: httpx.AsyncClient, admin: AuthPIAdmin, setup):  # noqa: ANN001
    page = await console.get(f"/console/events?type=organization.created&subject={setup['org']}")
    assert page.status_code == 200
    ids = re.findall(r'href="/console/events/(evt_[0-9a-z]+)"', page.text)
    assert len(ids) == 1
    detail = await console.get(f"/console/events/{ids[0]}")
    assert (
        "&#34;type&#34;: &#34;organization.created&#34;" in detail.text
        or '"type": "organization.created"' in detail.text
    )
    bad = await console.get("/console/events?type=no.such.type")
    assert bad.status_code == 400
    assert (await console.get("/console/events?after=yesterday")).status_code == 400
    tail = await console.get(f"/console/events/tail?after={ids[0]}")
    newer_types = {e["type"] for e in tail.json()["events"]}
    assert "organization.created" not in newer_types
    assert "user.created" in newer_types
    csrf_of(page.text)  # the page is a signed-in page with the sign-out form


async def test_issuer_sign_in_methods_toggle(console: httpx.AsyncClient, admin: AuthPIAdmin, setup):  # noqa: ANN001
    method = await admin.issuer(setup["issuer"]).auth_methods.create({"type": "magic_link"})
    url = f"/console/issuers/{setup['issuer']}"
    page = await console.get(url)
    assert "magic_link" in page.text
    r = await post_form(console, url, f"{url}/auth-methods/{method.id}/disable", {})
    assert r.status_code == 303
    assert (await admin.issuer(setup["issuer"]).auth_methods.get(method.id)).enabled is False
    await post_form(console, url, f"{url}/auth-methods/{method.id}/enable", {})
    assert (await admin.issuer(setup["issuer"]).auth_methods.get(method.id)).enabled is True


async def test_an_item_error_shows_next_to_its_list_field(
    console: httpx.AsyncClient, admin: AuthPIAdmin, setup
):  # noqa: ANN001
    new = f"/console/issuers/{setup['issuer']}/clients/new"
    response = await post_form(
        console,
        new,
        new,
        {
            "name": "web",
            "confidential": "true",
            "settings.openid.application_type": "web",
            "settings.openid.grant_types": "authorization_code",
            "settings.openid.redirect_uris": "not a uri",
            "settings.scopes": "openid",
        },
    )
    assert response.status_code == 422
    assert 'id="f-settings-openid-redirect_uris-err"' in response.text
    assert (await admin.issuer(setup["issuer"]).clients.list()).data == []
