"""The hosted invitation page (`/{issuer_id}/invitation/{token}`) over HTTP, with the link read from
the mail the real SMTP sink received: accept as a new user, as an existing user, decline, and every
refusal leaving the rows as they were."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import asyncpg
import httpx
import pytest
from authpi_admin import AuthPIAdmin
from fastapi import FastAPI

from app.core.ids import now_ms
from app.main import create_app
from tests.conftest import AccountCredentials, make_settings
from tests.fixtures.smtp import SmtpSink
from tests.fixtures.tenancy import event_types
from tests.oidc.helpers import PASSWORD, authorize_params, make_setup, pkce_pair, sign_in

LINK = re.compile(r"http://testserver/(i_[a-z0-9]+)/invitation/([A-Za-z0-9_-]+)")
NEW_PASSWORD = "a brand new passphrase 7"


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]*)"', html)
    assert found, html
    return found.group(1)


@pytest.fixture
async def browser(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver",
                                 headers={"Origin": "http://testserver"}) as c:
        yield c


@pytest.fixture
async def issuer(admin: AuthPIAdmin) -> str:
    return (await admin.issuers.create({"name": "acme-prod"})).id


def address(name: str = "grace") -> str:
    return f"{name}.{uuid.uuid4().hex[:10]}@globex.example"


async def invite(admin: AuthPIAdmin, smtp: SmtpSink, pg: asyncpg.Pool, issuer_id: str, org_id: str,
                 email: str, **body: Any) -> tuple[str, str]:
    """(invitation id, the token of the link in the mail), once the mail's send is in the trail."""
    inv = await admin.issuer(issuer_id).organization(org_id).invitations.create(
        {"email": email, "scopes": ["invoices:read"], **body})
    mails = await asyncio.to_thread(smtp.wait_for, email)
    found = LINK.search(mails[-1].part("plain"))
    assert found
    assert found.group(1) == issuer_id
    await sent(pg, inv.id)
    return inv.id, found.group(2)


async def sent(pg: asyncpg.Pool, inv_id: str, count: int = 1) -> None:
    for _ in range(200):  # email.sent is written after the send: wait for it before any snapshot
        if await pg.fetchval("SELECT count(*) FROM outbox WHERE ref_id = $1 AND status = 'sent'",
                             inv_id) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the invitation mail was not sent")


async def snapshot(pg: asyncpg.Pool, account_id: str, inv_id: str) -> dict[str, Any]:
    row = await pg.fetchrow("SELECT status, token_hash, accepted_at, declined_at, user_id_invited, "
                            "updated_at "
                            "FROM invitations WHERE id = $1", inv_id)
    return {"invitation": dict(row) if row else None,
            "users": await pg.fetchval("SELECT count(*) FROM users WHERE account_id = $1", account_id),
            "memberships": await pg.fetchval("SELECT count(*) FROM memberships WHERE account_id = $1",
                                             account_id),
            "events": await event_types(pg, account_id)}


async def post(browser: httpx.AsyncClient, issuer_id: str, token: str, action: str,
               csrf: str | None = None, **data: str) -> httpx.Response:
    if csrf is None:
        page = await browser.get(f"/{issuer_id}/invitation/x")  # any page of the issuer sets the cookie
        csrf = csrf_of(page.text) if 'name="csrf"' in page.text else ""
    return await browser.post(f"/{issuer_id}/invitation/{token}/{action}", data={"csrf": csrf, **data})


async def form(browser: httpx.AsyncClient, issuer_id: str, token: str) -> tuple[httpx.Response, str]:
    page = await browser.get(f"/{issuer_id}/invitation/{token}")
    assert page.status_code == 200, page.text
    return page, csrf_of(page.text)


async def invite_a_user(admin: AuthPIAdmin, smtp: SmtpSink, pg: asyncpg.Pool, issuer: str
                        ) -> tuple[Any, Any, str, str]:
    """An existing user with a password, invited to a new organization: (user, org, inv id, token)."""
    user = await admin.issuer(issuer).users.create(
        {"username_type": "email", "username": address("ada"), "password": PASSWORD})
    org = await admin.issuer(issuer).organizations.create({"name": "Globex"})
    inv_id, token = await invite(admin, smtp, pg, issuer, org.id, user.username)
    return user, org, inv_id, token


class TestAccept:
    async def test_new_user_sets_a_password_and_joins_with_the_invited_scopes_and_groups(
            self, admin: AuthPIAdmin, browser: httpx.AsyncClient, smtp: SmtpSink, pg: asyncpg.Pool,
            account: AccountCredentials, issuer: str):
        await pg.execute("""UPDATE issuers SET settings = settings || '{"branding": {"name": "Acme Identity",
                            "primary_color": "#0055aa"}}'::jsonb WHERE id = $1""", issuer)
        org = await admin.issuer(issuer).organizations.create({"name": "Globex"})
        groups = admin.issuer(issuer).organization(org.id).groups
        group = await groups.create({"name": "g", "scopes": ["b:read"]})
        email = address()
        inv_id, token = await invite(admin, smtp, pg, issuer, org.id, email, groups=[group.id],
                                     user_title="CTO")
        page, csrf = await form(browser, issuer, token)
        assert "Join Globex" in page.text
        assert email in page.text
        assert "#0055aa" in page.text
        assert 'autocomplete="new-password"' in page.text
        assert '<label for="password">New password</label>' in page.text
        assert 'id="decline"' in page.text
        # Too short: the form again, nothing written.
        before = await snapshot(pg, account.account_id, inv_id)
        r = await post(browser, issuer, token, "accept", csrf, password="short")
        assert r.status_code == 400
        assert "at least 8 characters" in r.text
        assert await snapshot(pg, account.account_id, inv_id) == before
        r = await post(browser, issuer, token, "accept", csrf, password=NEW_PASSWORD)
        assert r.status_code == 200, r.text
        assert "You are now a member of Globex" in r.text
        user = await pg.fetchrow("SELECT * FROM users WHERE account_id = $1 AND username = $2",
                                 account.account_id, email)
        assert user["username_type"] == "email"
        assert json.loads(user["security"])["email_verified"] is True
        m = await pg.fetchrow("SELECT * FROM memberships WHERE org_id = $1", org.id)
        assert (m["member_id"], json.loads(m["scopes"]), json.loads(m["groups"]), m["user_title"]) == (
            user["id"], ["invoices:read"], [group.id], "CTO")
        got = await admin.issuer(issuer).organization(org.id).invitations.get(inv_id)
        assert (got.status, got.user_id_invited) == ("accepted", user["id"])
        assert (await event_types(pg, account.account_id))[-4:] == [
            "user.created", "user.email.verified", "organization.membership.created",
            "organization.invitation.accepted"]

    async def test_existing_user_signs_in_with_their_password(
            self, admin: AuthPIAdmin, browser: httpx.AsyncClient, smtp: SmtpSink, pg: asyncpg.Pool,
            account: AccountCredentials, issuer: str):
        user, org, inv_id, token = await invite_a_user(admin, smtp, pg, issuer)
        page, csrf = await form(browser, issuer, token)
        assert 'autocomplete="current-password"' in page.text
        before = await snapshot(pg, account.account_id, inv_id)
        r = await post(browser, issuer, token, "accept", csrf, password="not the password")
        assert r.status_code == 401
        assert "The password is incorrect." in r.text
        after = await snapshot(pg, account.account_id, inv_id)
        # Only the failed check is in the trail, as on the sign-in page.
        assert after["events"] == [*before["events"], "user.verification.failed"]
        assert {k: v for k, v in after.items() if k != "events"} == {
            k: v for k, v in before.items() if k != "events"}
        r = await post(browser, issuer, token, "accept", csrf, password=PASSWORD)
        assert r.status_code == 200, r.text
        assert (await pg.fetchval("SELECT count(*) FROM users WHERE account_id = $1", account.account_id)
                == before["users"])
        assert await pg.fetchval("SELECT member_id FROM memberships WHERE org_id = $1", org.id) == user.id
        assert (await event_types(pg, account.account_id))[-4:] == [
            "user.verification.succeeded", "user.email.verified", "organization.membership.created",
            "organization.invitation.accepted"]

    async def test_german(self, admin: AuthPIAdmin, browser: httpx.AsyncClient, smtp: SmtpSink,
                          pg: asyncpg.Pool, issuer: str):
        org = await admin.issuer(issuer).organizations.create({"name": "Globex"})
        _, token = await invite(admin, smtp, pg, issuer, org.id, address())
        page = await browser.get(f"/{issuer}/invitation/{token}", headers={"Accept-Language": "de"})
        assert "Globex beitreten" in page.text
        assert "Ablehnen" in page.text
        assert "Neues Passwort" in page.text


class TestDecline:
    async def test_decline_marks_it_declined_and_the_link_is_spent(
            self, admin: AuthPIAdmin, browser: httpx.AsyncClient, smtp: SmtpSink, pg: asyncpg.Pool,
            account: AccountCredentials, issuer: str):
        org = await admin.issuer(issuer).organizations.create({"name": "Globex"})
        inv_id, token = await invite(admin, smtp, pg, issuer, org.id, address())
        _, csrf = await form(browser, issuer, token)
        r = await post(browser, issuer, token, "decline", csrf)
        assert r.status_code == 200
        assert "You declined the invitation to join Globex." in r.text
        got = await admin.issuer(issuer).organization(org.id).invitations.get(inv_id)
        assert got.status == "declined"
        assert got.declined_at
        assert (await event_types(pg, account.account_id))[-1] == "organization.invitation.declined"
        before = await snapshot(pg, account.account_id, inv_id)
        assert (await browser.get(f"/{issuer}/invitation/{token}")).status_code == 409
        r = await post(browser, issuer, token, "accept", csrf, password=NEW_PASSWORD)
        assert r.status_code == 409
        assert "already been declined" in r.text
        assert await snapshot(pg, account.account_id, inv_id) == before


async def _expired(admin: AuthPIAdmin, pg: asyncpg.Pool, issuer: str, org_id: str, inv_id: str) -> None:
    # Past its expiry without sleeping (the lifetime is AUTHPI_INVITATION_TTL_SECONDS or expires_at).
    await pg.execute("UPDATE invitations SET expires_at = $2 WHERE id = $1", inv_id, now_ms() - 1)


async def _revoked(admin: AuthPIAdmin, pg: asyncpg.Pool, issuer: str, org_id: str, inv_id: str) -> None:
    await admin.issuer(issuer).organization(org_id).invitations.revoke(inv_id)


async def _accepted(admin: AuthPIAdmin, pg: asyncpg.Pool, issuer: str, org_id: str, inv_id: str) -> None:
    await pg.execute("UPDATE invitations SET status = 'accepted', accepted_at = $2 WHERE id = $1",
                     inv_id, now_ms())


async def _suspended(admin: AuthPIAdmin, pg: asyncpg.Pool, issuer: str, org_id: str, inv_id: str) -> None:
    await admin.issuer(issuer).organizations.update(org_id, {"status": "suspended",
                                                             "status_reason": "unpaid"})


async def _disabled(admin: AuthPIAdmin, pg: asyncpg.Pool, issuer: str, org_id: str, inv_id: str) -> None:
    await admin.issuer(issuer).organizations.update(org_id, {"invitation_enabled": False})


async def _full(admin: AuthPIAdmin, pg: asyncpg.Pool, issuer: str, org_id: str, inv_id: str) -> None:
    other = await admin.issuer(issuer).users.create({"username_type": "email", "username": address("bob")})
    members = admin.issuer(issuer).organization(org_id).members
    await members.create({"member_id": other.id, "scopes": ["a:read"]})
    await admin.issuer(issuer).organizations.update(org_id, {"max_members": 1})


class TestRefusals:
    @pytest.mark.parametrize(("make", "status", "says"), [
        (_expired, 410, "has expired"),
        (_revoked, 410, "was withdrawn"),
        (_accepted, 409, "already been accepted"),
        (_suspended, 403, "is suspended"),
        (_disabled, 403, "does not accept invitations"),
        (_full, 409, "maximum number of members"),
    ])
    async def test_each_is_a_clear_page_that_changes_nothing(
            self, make: Any, status: int, says: str, admin: AuthPIAdmin, browser: httpx.AsyncClient,
            smtp: SmtpSink, pg: asyncpg.Pool, account: AccountCredentials, issuer: str):
        org = await admin.issuer(issuer).organizations.create({"name": "Globex"})
        email = address()
        inv_id, token = await invite(admin, smtp, pg, issuer, org.id, email)
        _, csrf = await form(browser, issuer, token)
        await make(admin, pg, issuer, org.id, inv_id)
        before = await snapshot(pg, account.account_id, inv_id)
        page = await browser.get(f"/{issuer}/invitation/{token}")
        assert page.status_code == status
        assert says in page.text
        assert 'id="accept"' not in page.text
        for action in ("accept", "decline"):
            r = await post(browser, issuer, token, action, csrf, password=NEW_PASSWORD)
            assert r.status_code == status, (action, r.text)
            assert says in r.text
        assert await snapshot(pg, account.account_id, inv_id) == before

    async def test_unknown_foreign_and_replaced_links_are_404(
            self, admin: AuthPIAdmin, other_admin: AuthPIAdmin, browser: httpx.AsyncClient,
            smtp: SmtpSink, pg: asyncpg.Pool, account: AccountCredentials, issuer: str):
        org = await admin.issuer(issuer).organizations.create({"name": "Globex"})
        email = address()
        inv_id, old = await invite(admin, smtp, pg, issuer, org.id, email)
        await admin.issuer(issuer).organization(org.id).invitations.resend(inv_id)
        mails = await asyncio.to_thread(smtp.wait_for, email, 2)
        token = LINK.search(mails[-1].part("plain")).group(2)
        await sent(pg, inv_id, 2)
        _, csrf = await form(browser, issuer, token)
        sibling = (await admin.issuers.create({"name": "acme-staging"})).id
        foreign = (await other_admin.issuers.create({"name": "other-prod"})).id
        before = await snapshot(pg, account.account_id, inv_id)
        for issuer_id, tok in [(issuer, old), (issuer, token[:-2] + "xx"), (issuer, "x" * 200),
                               (sibling, token), (foreign, token), ("i_nonexistent", token)]:
            page = await browser.get(f"/{issuer_id}/invitation/{tok}")
            assert page.status_code == 404, (issuer_id, tok)
            for action in ("accept", "decline"):
                r = await post(browser, issuer_id, tok, action, password=NEW_PASSWORD)
                assert r.status_code == 404, (issuer_id, action)
        assert await snapshot(pg, account.account_id, inv_id) == before
        assert 'id="accept"' in (await browser.get(f"/{issuer}/invitation/{token}")).text

    async def test_csrf_and_origin_are_checked(
            self, admin: AuthPIAdmin, browser: httpx.AsyncClient, smtp: SmtpSink, pg: asyncpg.Pool,
            account: AccountCredentials, issuer: str):
        org = await admin.issuer(issuer).organizations.create({"name": "Globex"})
        inv_id, token = await invite(admin, smtp, pg, issuer, org.id, address())
        _, csrf = await form(browser, issuer, token)
        before = await snapshot(pg, account.account_id, inv_id)
        for action in ("accept", "decline"):
            url = f"/{issuer}/invitation/{token}/{action}"
            r = await browser.post(url, data={"csrf": "forged", "password": NEW_PASSWORD})
            assert r.status_code == 403
            r = await browser.post(url, data={"csrf": csrf, "password": NEW_PASSWORD},
                                   headers={"Origin": "https://evil.example"})
            assert r.status_code == 403
            assert "The form expired" in r.text
        assert await snapshot(pg, account.account_id, inv_id) == before


class TestSharedWithTheSignIn:
    async def test_password_failures_count_in_the_sign_in_throttle(
            self, database_url: str, admin: AuthPIAdmin, smtp: SmtpSink, pg: asyncpg.Pool,
            account: AccountCredentials):
        """The invitation page's wrong passwords and the sign-in page's are one throttle."""
        application = create_app(make_settings(auth_fail_limit=2), database_url=database_url)
        async with application.router.lifespan_context(application):
            application.state.oidc.throttle.max_delay = 0.01
            setup = await make_setup(admin)
            org = await admin.issuer(setup.issuer_id).organizations.create({"name": "Initech"})
            inv_id, token = await invite(admin, smtp, pg, setup.issuer_id, org.id, setup.username)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application),
                                         base_url="http://testserver",
                                         headers={"Origin": "http://testserver"}) as b:
                _, csrf = await form(b, setup.issuer_id, token)
                for _ in range(2):
                    r = await post(b, setup.issuer_id, token, "accept", csrf, password="wrong password")
                    assert r.status_code == 401
                before = await snapshot(pg, account.account_id, inv_id)
                r = await post(b, setup.issuer_id, token, "accept", csrf, password=PASSWORD)
                assert r.status_code == 429
                assert int(r.headers["Retry-After"]) >= 1
                assert await snapshot(pg, account.account_id, inv_id) == before
                verifier, challenge = pkce_pair()
                url = f"/{setup.issuer_id}/authorize?" + urlencode(authorize_params(setup, challenge))
                r = await sign_in(b, f"http://testserver{url}", setup.username)
                assert r.status_code == 429  # the sign-in page counts them too


class TestMoreRefusals:
    async def test_password_sign_in_turned_off(
            self, admin: AuthPIAdmin, browser: httpx.AsyncClient, smtp: SmtpSink, pg: asyncpg.Pool,
            account: AccountCredentials, issuer: str):
        org = await admin.issuer(issuer).organizations.create({"name": "Globex"})
        inv_id, token = await invite(admin, smtp, pg, issuer, org.id, address())
        _, csrf = await form(browser, issuer, token)
        await admin.issuer(issuer).auth_methods.create({"type": "password", "enabled": False})
        page = await browser.get(f"/{issuer}/invitation/{token}")
        assert 'id="accept"' not in page.text
        assert 'id="no-password"' in page.text
        before = await snapshot(pg, account.account_id, inv_id)
        r = await post(browser, issuer, token, "accept", csrf, password=NEW_PASSWORD)
        assert r.status_code == 403
        assert "password sign-in is turned off" in r.text
        assert await snapshot(pg, account.account_id, inv_id) == before

    async def test_already_a_member_rolls_everything_back(
            self, admin: AuthPIAdmin, browser: httpx.AsyncClient, smtp: SmtpSink, pg: asyncpg.Pool,
            account: AccountCredentials, issuer: str):
        user, org, inv_id, token = await invite_a_user(admin, smtp, pg, issuer)
        await admin.issuer(issuer).organization(org.id).members.create(
            {"member_id": user.id, "scopes": ["a:read"]})
        _, csrf = await form(browser, issuer, token)
        before = await snapshot(pg, account.account_id, inv_id)
        r = await post(browser, issuer, token, "accept", csrf, password=PASSWORD)
        assert r.status_code == 409
        assert "Nothing was changed" in r.text
        assert await snapshot(pg, account.account_id, inv_id) == before  # no event, no verified email
        assert "email_verified" not in await pg.fetchval("SELECT security::text FROM users WHERE id = $1",
                                                         user.id)
