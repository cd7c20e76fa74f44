"""Social-style sign-in through an upstream OpenID Provider that is a second issuer of the same
authpi server, over real HTTP: provisioning, linking without takeover, and refusals that change
nothing."""

from __future__ import annotations

import asyncpg
import httpx
from authpi_admin import AuthPIAdmin

from tests.conftest import AccountCredentials
from tests.federation.helpers import Walker, events_of, snapshot, social_method, upstream_user
from tests.fixtures.server import LiveServer
from tests.oidc.helpers import PASSWORD, OidcSetup, make_setup


class TestSocialSignIn:
    async def test_first_sign_in_provisions_and_the_second_finds_the_same_user(
            self, admin: AuthPIAdmin, account: AccountCredentials, live_server: LiveServer, down: OidcSetup,
            http: httpx.AsyncClient, pg: asyncpg.Pool) -> None:
        base = live_server.url
        method_id, up = await social_method(admin, base, down)
        await upstream_user(admin, up, "grace@hopper.example", verified=True)
        walker = Walker(http, base, down)
        before = await snapshot(pg, account.account_id, down.issuer_id)
        claims = await walker.tokens(await walker.via_button("grace@hopper.example"))
        assert claims["amr"] == ["fed"]
        assert claims["email"] == "grace@hopper.example"
        user = await pg.fetchrow("SELECT id, username, username_type FROM users WHERE id = $1", claims["sub"])
        assert (user["username"], user["username_type"]) == ("grace@hopper.example", "email")
        identity = await pg.fetchrow("SELECT * FROM federated_identities WHERE user_id = $1", claims["sub"])
        assert (identity["source_type"], identity["source_id"]) == ("auth_method", method_id)
        provisioned = await events_of(pg, account.account_id, "user.sso.provisioned")
        assert [(e["_user_id"], e["source_id"]) for e in provisioned] == [(claims["sub"], method_id)]
        after = await snapshot(pg, account.account_id, down.issuer_id)
        assert after["users"] == before["users"] + 1
        assert after["federated_identities"] == 1
        # Again, in a fresh browser: the same user, nothing new.
        async with httpx.AsyncClient(timeout=30) as other:
            again = Walker(other, base, down)
            claims2 = await again.tokens(await again.via_button("grace@hopper.example"))
        assert claims2["sub"] == claims["sub"]
        assert (await snapshot(pg, account.account_id, down.issuer_id))["users"] == after["users"]
        assert len(await events_of(pg, account.account_id, "user.sso.provisioned")) == 1

    async def test_an_unverified_email_of_an_existing_user_links_only_after_its_own_sign_in(
            self, admin: AuthPIAdmin, account: AccountCredentials, live_server: LiveServer, down: OidcSetup,
            http: httpx.AsyncClient, pg: asyncpg.Pool) -> None:
        base = live_server.url
        # Even trusting verified emails, an unverified one is no proof.
        method_id, up = await social_method(admin, base, down, trust=True)
        await upstream_user(admin, up, down.username, verified=False)
        walker = Walker(http, base, down)
        before = await snapshot(pg, account.account_id, down.issuer_id)
        page = await walker.via_button(down.username)
        assert page.status_code == 200, page.text
        assert "Link your account" in page.text
        # No identity, no session, no user.
        assert await snapshot(pg, account.account_id, down.issuer_id) == before
        assert await events_of(pg, account.account_id, "user.sso.linked") == []
        # A wrong password links nothing.
        login = await http.get(f"{base}/{down.issuer_id}/login?" + page.text.split('/login?', 1)[1]
                               .split('"', 1)[0].replace("&amp;", "&"))
        from tests.oidc.helpers import form_fields

        wrong = await http.post(f"{base}/{down.issuer_id}/login", headers={"Origin": base}, data={
            **form_fields(login.text), "username": down.username, "password": "not the password"})
        assert wrong.status_code == 401
        assert await snapshot(pg, account.account_id, down.issuer_id) == before
        # The account's own sign-in proves it: then the identity links to it.
        ok = await http.post(f"{base}/{down.issuer_id}/login", headers={"Origin": base}, data={
            **form_fields(login.text), "username": down.username, "password": PASSWORD})
        claims = await walker.tokens(await walker.follow(ok))
        assert claims["sub"] == down.user_id
        assert claims["amr"] == ["pwd"]
        linked = await events_of(pg, account.account_id, "user.sso.linked")
        assert [(e["_user_id"], e["via"], e["source_id"]) for e in linked] == [
            (down.user_id, "own_sign_in", method_id)]
        # From now on the upstream alone signs this user in.
        async with httpx.AsyncClient(timeout=30) as other:
            again = Walker(other, base, down)
            claims2 = await again.tokens(await again.via_button(down.username))
        assert (claims2["sub"], claims2["amr"]) == (down.user_id, ["fed"])

    async def test_a_verified_email_links_at_once_when_the_method_trusts_it(
            self, admin: AuthPIAdmin, account: AccountCredentials, live_server: LiveServer, down: OidcSetup,
            http: httpx.AsyncClient, pg: asyncpg.Pool) -> None:
        base = live_server.url
        method_id, up = await social_method(admin, base, down, trust=True)
        await upstream_user(admin, up, down.username, verified=True)
        walker = Walker(http, base, down)
        claims = await walker.tokens(await walker.via_button(down.username))
        assert (claims["sub"], claims["amr"]) == (down.user_id, ["fed"])
        linked = await events_of(pg, account.account_id, "user.sso.linked")
        assert [(e["_user_id"], e["via"]) for e in linked] == [(down.user_id, "verified_email")]

    async def test_without_trust_a_verified_email_still_asks_for_the_own_sign_in(
            self, admin: AuthPIAdmin, account: AccountCredentials, live_server: LiveServer, down: OidcSetup,
            http: httpx.AsyncClient, pg: asyncpg.Pool) -> None:
        base = live_server.url
        _, up = await social_method(admin, base, down, trust=False)
        await upstream_user(admin, up, down.username, verified=True)
        before = await snapshot(pg, account.account_id, down.issuer_id)
        page = await Walker(http, base, down).via_button(down.username)
        assert "Link your account" in page.text
        assert await snapshot(pg, account.account_id, down.issuer_id) == before

    async def test_a_deleted_user_lets_its_identity_go_and_another_issuers_method_is_not_reachable(
            self, admin: AuthPIAdmin, account: AccountCredentials, live_server: LiveServer, down: OidcSetup,
            http: httpx.AsyncClient, pg: asyncpg.Pool) -> None:
        base = live_server.url
        method_id, up = await social_method(admin, base, down)
        await upstream_user(admin, up, "grace@hopper.example", verified=True)
        walker = Walker(http, base, down)
        first = await walker.tokens(await walker.via_button("grace@hopper.example"))
        await admin.issuer(down.issuer_id).users.delete(first["sub"])
        left = await pg.fetchval("SELECT count(*) FROM federated_identities WHERE user_id = $1", first["sub"])
        assert left == 0
        async with httpx.AsyncClient(timeout=30) as other:
            again = Walker(other, base, down)
            second = await again.tokens(await again.via_button("grace@hopper.example"))
        assert second["sub"] != first["sub"]
        # The method belongs to its issuer: under another issuer's path it does not exist.
        elsewhere = await make_setup(admin)
        async with httpx.AsyncClient(timeout=30) as stranger:
            page = await Walker(stranger, base, elsewhere).via_source(method_id, "grace@hopper.example")
        assert page.status_code == 404
        assert await snapshot(pg, account.account_id, elsewhere.issuer_id) == {
            "users": 1, "federated_identities": 0, "memberships": 1, "login_sessions": 0,
            "authorization_codes": 0}
