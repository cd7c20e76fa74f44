"""A key limited to one issuer (`restrictions.issuer_ids`) makes a delegated admin in the console: it sees
its issuer only, another issuer's URL is a not-found page, account-wide pages are absent from the
navigation and refused; every refusal changes nothing (rows counted in PostgreSQL)."""

from __future__ import annotations

import asyncpg
import httpx
from authpi_admin import AuthPIAdmin

from tests.conftest import AccountCredentials, count_rows
from tests.console.helpers import csrf_of, post_form, sign_in


async def test_a_key_limited_to_one_issuer_is_its_delegated_admin(
    browser: httpx.AsyncClient, admin: AuthPIAdmin, account: AccountCredentials, pg: asyncpg.Pool
):
    mine = await admin.issuers.create({"name": "team-a-issuer"})
    other = await admin.issuers.create({"name": "team-b-issuer"})
    their_org = await admin.issuer(other.id).organizations.create({"name": "Initech"})
    key = await admin.api_keys.create({"type": "api_key", "name": "team-a", "restrictions": {
        "scopes": ["*:**"], "issuer_ids": [mine.id]}})
    assert (await sign_in(browser, key.id, key.secret_plain)).status_code == 303

    home = await browser.get("/console")
    assert home.status_code == 200
    assert "Delegated admin" in home.text
    for label in ("Issuers", "Organizations", "Users", "Agents"):
        assert f">{label}</a>" in home.text
    for label in ("Webhooks", "Events", "API keys"):
        assert f">{label}</a>" not in home.text

    issuers = await browser.get("/console/issuers")
    assert issuers.status_code == 200
    assert "team-a-issuer" in issuers.text
    assert "team-b-issuer" not in issuers.text
    assert "New issuer" not in issuers.text
    orgs = await browser.get("/console/organizations")
    assert mine.id in orgs.text
    assert other.id not in orgs.text

    for url in (f"/console/issuers/{other.id}", f"/console/issuers/{other.id}/organizations/{their_org.id}",
                f"/console/organizations?issuer={other.id}", f"/console/users?issuer={other.id}"):
        page = await browser.get(url)
        assert page.status_code == 404, url
        assert "does not exist in this account" in page.text
    for url in ("/console/webhooks", "/console/events", "/console/api-keys", "/console/issuers/new"):
        page = await browser.get(url)
        assert page.status_code == 403, url
        assert "administers some issuers only" in page.text

    before_events = await count_rows(pg, "events", account.account_id)
    before_issuers = await count_rows(pg, "issuers", account.account_id)
    csrf = csrf_of(issuers.text)
    for action, data, status in (
        (f"/console/issuers/{other.id}/organizations/new", {"name": "x"}, 404),
        (f"/console/issuers/{other.id}/organizations/{their_org.id}/status", {"status": "suspended"}, 404),
        (f"/console/issuers/{other.id}/signing-keys/rotate", {}, 404),
        ("/console/issuers/new", {"name": "mine-too"}, 403),
        ("/console/api-keys/new", {"name": "wider", "scopes": "*:**"}, 403),
    ):
        response = await browser.post(action, data={"csrf": csrf, **data})
        assert response.status_code == status, action
    assert await count_rows(pg, "events", account.account_id) == before_events
    assert await count_rows(pg, "issuers", account.account_id) == before_issuers
    assert (await admin.issuer(other.id).organizations.get(their_org.id)).status == "active"

    # Its own issuer works as for any operator, through the same services.
    assert (await browser.get(f"/console/issuers/{mine.id}")).status_code == 200
    created = await post_form(browser, f"/console/issuers/{mine.id}/organizations/new",
                              f"/console/issuers/{mine.id}/organizations/new", {"name": "Globex"})
    assert created.status_code == 303
    assert [o.name for o in (await admin.issuer(mine.id).organizations.list()).data] == ["Globex"]
