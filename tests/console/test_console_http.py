"""The console over HTTP: sign-in, session, CSRF, login links, scopes, tenant isolation. Every refusal
is a clear page and changes nothing (rows counted in PostgreSQL)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from http.cookies import SimpleCookie

import asyncpg
import httpx
import pytest
from authpi_admin import AuthPIAdmin
from fastapi import FastAPI

from app.console.web import SESSION_COOKIE, ConsoleSession
from tests.conftest import TEST_SECRET_KEY, AccountCredentials, count_rows
from tests.console.helpers import csrf_of, post_form, sign_in


async def issuer_count(pg: asyncpg.Pool, account_id: str) -> int:
    return int(await pg.fetchval("SELECT count(*) FROM issuers WHERE account_id = $1", account_id))


class TestSignIn:
    async def test_the_form_is_labelled_and_signs_in(
        self, browser: httpx.AsyncClient, account: AccountCredentials
    ):
        page = await browser.get("/console/sign-in")
        assert ">Key ID</label>" in page.text
        assert ">Secret</label>" in page.text
        assert ">Sign in</button>" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert "unsafe-inline" not in page.headers["content-security-policy"]
        response = await browser.post(
            "/console/sign-in",
            data={"csrf": csrf_of(page.text), "key_id": account.key_id, "secret": account.secret},
        )
        assert response.status_code == 303
        cookie = response.headers["set-cookie"]
        assert cookie.startswith(SESSION_COOKIE + "=")
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
        assert "Path=/console" in cookie
        # Encrypted: neither the key id nor the secret can be read from it.
        value = browser.cookies.get(SESSION_COOKIE)
        assert account.secret not in value
        assert account.key_id not in value
        overview = await browser.get("/console")
        assert overview.status_code == 200
        assert "<h1>Overview</h1>" in overview.text

    async def test_a_wrong_secret_is_refused_on_the_form(
        self, browser: httpx.AsyncClient, account: AccountCredentials
    ):
        response = await sign_in(browser, account.key_id, "wrong-secret")
        assert response.status_code == 401
        assert "do not sign in" in response.text
        assert SESSION_COOKIE not in browser.cookies

    async def test_an_organization_key_is_refused(self, browser: httpx.AsyncClient, admin: AuthPIAdmin):
        issuer = await admin.issuers.create({"name": "orgkey-issuer"})
        org = await admin.issuer(issuer.id).organizations.create({"name": "Globex"})
        key = (
            await admin.issuer(issuer.id)
            .organization(org.id)
            .api_keys.create({"type": "api_key", "name": "k", "restrictions": {"scopes": []}})
        )
        response = await sign_in(browser, key.id, key.secret_plain)
        assert response.status_code == 403
        assert "account API key" in response.text

    async def test_sign_in_without_its_csrf_token_is_refused(
        self, browser: httpx.AsyncClient, account: AccountCredentials
    ):
        await browser.get("/console/sign-in")
        response = await browser.post(
            "/console/sign-in", data={"key_id": account.key_id, "secret": account.secret}
        )
        assert response.status_code == 403
        assert "CSRF" in response.text
        assert SESSION_COOKIE not in browser.cookies

    async def test_sign_out_ends_the_session(self, console: httpx.AsyncClient):
        response = await post_form(console, "/console", "/console/sign-out", {})
        assert response.status_code == 303
        after = await console.get("/console/issuers")
        assert after.status_code == 401


class TestRefusals:
    async def test_no_session_gets_a_sign_in_page_and_creates_nothing(
        self, browser: httpx.AsyncClient, account: AccountCredentials, pg: asyncpg.Pool
    ):
        page = await browser.get("/console/issuers")
        assert page.status_code == 401
        assert "Sign in to use the console" in page.text
        assert 'href="/console/sign-in"' in page.text
        before = await issuer_count(pg, account.account_id)
        post = await browser.post("/console/issuers/new", data={"csrf": "x", "name": "nope"})
        assert post.status_code == 401
        assert await issuer_count(pg, account.account_id) == before

    async def test_an_expired_session_is_ended_and_changes_nothing(
        self, app: FastAPI, console: httpx.AsyncClient, account: AccountCredentials, pg: asyncpg.Pool
    ):
        page = await console.get("/console/issuers/new")
        csrf = csrf_of(page.text)
        sess = ConsoleSession.open(app.state.secret_key, console.cookies[SESSION_COOKIE])
        assert sess is not None
        sess.last_seen = int(time.time()) - 31 * 60  # idle past the 30 minutes
        console.cookies.set(SESSION_COOKIE, sess.seal(app.state.secret_key), path="/console")
        before = await issuer_count(pg, account.account_id)
        response = await console.post("/console/issuers/new", data={"csrf": csrf, "name": "late"})
        assert response.status_code == 401
        assert "Your console session has expired" in response.text
        assert await issuer_count(pg, account.account_id) == before
        # The cookie is cleared.
        assert response.headers["set-cookie"].startswith(f'{SESSION_COOKIE}="";')

    async def test_activity_keeps_the_session_alive(self, app: FastAPI, console: httpx.AsyncClient):
        [jar_cookie] = [c for c in console.cookies.jar if c.name == SESSION_COOKIE]
        sess = ConsoleSession.open(app.state.secret_key, jar_cookie.value.strip('"'))
        assert sess is not None
        sess.last_seen = int(time.time()) - 20 * 60  # idle 20 minutes: still valid
        console.cookies.set(
            SESSION_COOKIE, sess.seal(app.state.secret_key), domain=jar_cookie.domain, path="/console"
        )
        page = await console.get("/console/issuers")
        assert page.status_code == 200
        cookie = SimpleCookie()
        cookie.load(page.headers["set-cookie"])
        renewed = ConsoleSession.open(app.state.secret_key, cookie[SESSION_COOKIE].value)
        assert renewed is not None
        assert renewed.last_seen >= int(time.time()) - 5
        assert renewed.issued_at == sess.issued_at  # the absolute lifetime does not move

    async def test_a_tampered_cookie_is_an_expired_session(self, browser: httpx.AsyncClient):
        browser.cookies.set(SESSION_COOKIE, "AAAA" * 20, path="/console")
        response = await browser.get("/console")
        assert response.status_code == 401
        assert "expired" in response.text

    @pytest.mark.parametrize("csrf", [None, "", "forged-token"])
    async def test_a_missing_or_wrong_csrf_token_changes_nothing(
        self, console: httpx.AsyncClient, account: AccountCredentials, pg: asyncpg.Pool, csrf: str | None
    ):
        before = await count_rows(pg, "events", account.account_id)
        data = {"name": "csrf-victim"} if csrf is None else {"name": "csrf-victim", "csrf": csrf}
        response = await console.post("/console/issuers/new", data=data)
        assert response.status_code == 403
        assert "CSRF" in response.text
        assert "Nothing was changed" in response.text
        assert await issuer_count(pg, account.account_id) == 0
        assert await count_rows(pg, "events", account.account_id) == before

    async def test_another_accounts_object_is_not_found_and_untouched(
        self,
        console: httpx.AsyncClient,
        other_admin: AuthPIAdmin,
        other_account: AccountCredentials,
        pg: asyncpg.Pool,
    ):
        theirs = await other_admin.issuers.create({"name": "their-issuer"})
        org = await other_admin.issuer(theirs.id).organizations.create({"name": "Theirs"})
        for url in (
            f"/console/issuers/{theirs.id}",
            f"/console/issuers/{theirs.id}/organizations/{org.id}",
            f"/console/organizations?issuer={theirs.id}",
        ):
            page = await console.get(url)
            assert page.status_code == 404, url
            assert "does not exist in this account" in page.text
        before = await count_rows(pg, "events", other_account.account_id)
        csrf = csrf_of((await console.get("/console")).text)
        for action, data in (
            (f"/console/issuers/{theirs.id}/organizations/new", {"name": "x"}),
            (f"/console/issuers/{theirs.id}/organizations/{org.id}/status", {"status": "suspended"}),
            (f"/console/issuers/{theirs.id}/signing-keys/rotate", {}),
        ):
            response = await console.post(action, data={"csrf": csrf, **data})
            assert response.status_code in (303, 404), action
            if response.status_code == 303:  # an action's outcome is shown on the next page
                shown = await console.get(response.headers["location"])
                assert shown.status_code == 404
        assert await count_rows(pg, "events", other_account.account_id) == before
        assert (await other_admin.issuer(theirs.id).organizations.get(org.id)).status == "active"

    async def test_a_key_without_the_scope_sees_less_and_changes_nothing(
        self, browser: httpx.AsyncClient, admin: AuthPIAdmin, account: AccountCredentials, pg: asyncpg.Pool
    ):
        limited = await admin.api_keys.create(
            {"type": "api_key", "name": "reader", "restrictions": {"scopes": ["issuers:read", "events:read"]}}
        )
        assert (await sign_in(browser, limited.id, limited.secret_plain)).status_code == 303
        page = await browser.get("/console/issuers")
        assert page.status_code == 200
        assert "New issuer" not in page.text
        assert ">Webhooks<" not in page.text  # no webhooks:read, no navigation to it
        assert (await browser.get("/console/webhooks")).status_code == 403
        form = await browser.get("/console/issuers/new")
        assert form.status_code == 403
        assert "lacks the scope issuers:write" in form.text
        before = await count_rows(pg, "events", account.account_id)
        csrf = csrf_of(page.text)
        response = await browser.post("/console/issuers/new", data={"csrf": csrf, "name": "nope"})
        assert response.status_code == 403
        assert "issuers:write" in response.text
        assert await issuer_count(pg, account.account_id) == 0
        assert await count_rows(pg, "events", account.account_id) == before

    async def test_a_revoked_key_ends_its_session_at_once(
        self, browser: httpx.AsyncClient, admin: AuthPIAdmin
    ):
        key = await admin.api_keys.create(
            {"type": "api_key", "name": "temp", "restrictions": {"scopes": ["*:**"]}}
        )
        assert (await sign_in(browser, key.id, key.secret_plain)).status_code == 303
        assert (await browser.get("/console/issuers")).status_code == 200
        await admin.api_keys.revoke(key.id)
        page = await browser.get("/console/issuers")
        assert page.status_code == 401
        assert "no longer valid" in page.text


class TestForms:
    async def test_validation_errors_show_next_to_the_field_and_create_nothing(
        self, console: httpx.AsyncClient, account: AccountCredentials, pg: asyncpg.Pool
    ):
        response = await post_form(
            console,
            "/console/issuers/new",
            "/console/issuers/new",
            {"name": "ok", "available_scopes": "not a scope"},
        )
        assert response.status_code == 422
        assert 'id="f-available_scopes-err"' in response.text
        assert "is not a resource:action scope" in response.text
        assert await issuer_count(pg, account.account_id) == 0

    async def test_issuer_client_org_member_and_key_go_through_the_services(
        self, app: FastAPI, console: httpx.AsyncClient, admin: AuthPIAdmin, account: AccountCredentials
    ):
        created = await post_form(
            console, "/console/issuers/new", "/console/issuers/new", {"name": "acme-prod"}
        )
        issuer_id = created.headers["location"].split("/")[3].split("?")[0]
        issuer = await admin.issuers.get(issuer_id)
        assert issuer.name == "acme-prod"
        client = await post_form(
            console,
            f"/console/issuers/{issuer_id}/clients/new",
            f"/console/issuers/{issuer_id}/clients/new",
            {
                "name": "acme-web",
                "confidential": "true",
                "settings.openid.application_type": "web",
                "settings.openid.grant_types": "authorization_code\nrefresh_token",
                "settings.openid.redirect_uris": "http://localhost:3000/cb",
                "settings.scopes": "openid\nprofile",
            },
        )
        assert client.status_code == 200
        assert "shown only once" in client.text
        clients = (await admin.issuer(issuer_id).clients.list()).data
        assert [c.name for c in clients] == ["acme-web"]
        org_resp = await post_form(
            console,
            f"/console/issuers/{issuer_id}/organizations/new",
            f"/console/issuers/{issuer_id}/organizations/new",
            {"name": "Globex"},
        )
        org_id = org_resp.headers["location"].split("/")[5].split("?")[0]
        user = await admin.issuer(issuer_id).users.create(
            {"username_type": "email", "username": "ada@globex.example"}
        )
        org_page = f"/console/issuers/{issuer_id}/organizations/{org_id}"
        member = await post_form(
            console,
            org_page,
            org_page + "/members/new",
            {"member_id": user.id, "scopes": "invoices:read\ninvoices:write"},
        )
        assert member.status_code == 303
        members = (await admin.issuer(issuer_id).organization(org_id).members.list()).data
        got = next(m for m in members if m.member_id == user.id)
        assert sorted(got.scopes) == ["invoices:read", "invoices:write"]
        key_page = await post_form(
            console,
            org_page,
            org_page + "/api-keys/new",
            {"name": "globex-backend", "restrictions.scopes": "invoices:read"},
        )
        secret = re.search(r'<code id="c-secret">([^<]+)</code>', key_page.text).group(1)  # type: ignore[union-attr]
        key_id = re.search(r"<code>(key_[0-9a-z]+)</code>", key_page.text).group(1)  # type: ignore[union-attr]
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
        async with AuthPIAdmin(
            api_key=(key_id, secret), base_url="http://testserver", http_client=http
        ) as caller:
            me = await caller.whoami()
        assert me["organizations"][0]["org_id"] == org_id
        events = {e.type for e in (await admin.events.list(limit=50)).data}
        assert {
            "issuer.created",
            "client.created",
            "organization.created",
            "organization.membership.created",
            "api-key.created",
        } <= events
        for event in (await admin.events.list(limit=50)).data:
            if event.type == "issuer.created":
                assert event.auth["key_id"] == account.key_id


class TestLoginLink:
    async def test_the_cli_prints_a_link_that_signs_in_once(
        self,
        database_url: str,
        live_server,  # noqa: ANN001
        account: AccountCredentials,
    ):
        env = {
            **os.environ,
            "AUTHPI_DATABASE_URL": database_url,
            "AUTHPI_SECRET_KEY": TEST_SECRET_KEY,
            "AUTHPI_PUBLIC_URL": live_server.url,
        }
        result = subprocess.run(
            [sys.executable, "-m", "app.cli", "account", "login-link", account.account_id],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        link = result.stdout.strip()
        assert re.fullmatch(re.escape(live_server.url) + r"/console/login-link/[A-Za-z0-9_\-]{40,}", link)
        with httpx.Client() as browser:
            page = browser.get(link)
            assert page.status_code == 200
            assert ">Sign in</button>" in page.text
            # Opening the page used nothing up: a second GET still shows it.
            page = browser.get(link)
            assert page.status_code == 200
            used = browser.post(link, data={"csrf": csrf_of(page.text)})
            assert used.status_code == 303
            overview = browser.get(live_server.url + "/console")
            assert overview.status_code == 200
            keys = browser.get(live_server.url + "/console/api-keys")
            assert "console sign-in link" in keys.text
        with httpx.Client() as again:
            page = again.get(link)
            assert page.status_code == 404
            assert "already used or expired" in page.text

    async def test_an_expired_link_is_refused(
        self, app: FastAPI, browser: httpx.AsyncClient, account: AccountCredentials, pg: asyncpg.Pool
    ):
        from app.console.login_link import create_link

        async with app.state.db.unit_of_work() as session:
            link, token = await create_link(session, app.state.secret_key, account.account_id)
        await pg.execute("UPDATE console_login_links SET expires_at = 1 WHERE id = $1", link.id)
        keys_before = int(
            await pg.fetchval("SELECT count(*) FROM api_keys WHERE account_id = $1", account.account_id)
        )
        page = await browser.get(f"/console/login-link/{token}")
        assert page.status_code == 404
        await browser.get("/console/sign-in")  # a CSRF cookie, to show that is not what refuses it
        response = await browser.post(
            f"/console/login-link/{token}", data={"csrf": browser.cookies.get("authpi_console_csrf") or ""}
        )
        assert response.status_code == 404
        assert (
            int(await pg.fetchval("SELECT count(*) FROM api_keys WHERE account_id = $1", account.account_id))
            == keys_before
        )

    async def test_the_minted_key_is_short_lived_and_recorded(
        self, app: FastAPI, browser: httpx.AsyncClient, account: AccountCredentials, pg: asyncpg.Pool
    ):
        from app.console.login_link import create_link

        async with app.state.db.unit_of_work() as session:
            link, token = await create_link(session, app.state.secret_key, account.account_id)
        page = await browser.get(f"/console/login-link/{token}")
        assert (
            await browser.post(f"/console/login-link/{token}", data={"csrf": csrf_of(page.text)})
        ).status_code == 303
        row = await pg.fetchrow("SELECT key_id, used_at FROM console_login_links WHERE id = $1", link.id)
        assert row["used_at"] is not None
        key = await pg.fetchrow("SELECT expires_at, created_at FROM api_keys WHERE id = $1", row["key_id"])
        assert key["expires_at"] - key["created_at"] <= 12 * 3600 * 1000
        event = await pg.fetchrow(
            "SELECT auth FROM events WHERE type = 'api-key.created' AND subject->>'id' = $1", row["key_id"]
        )
        assert '"console-login-link"' in event["auth"]
        assert link.id in event["auth"]
