"""refresh_token rotation and code redemption in one statement (app/oidc/grants/hot.py): what they
write, that they change nothing when they decline, and that they agree with the ORM path."""

from __future__ import annotations

import asyncio
import hashlib
import json

import asyncpg
import httpx
import pytest
from authpi_admin import AuthPIAdmin
from fastapi import FastAPI

from app.core.crypto import hmac_sha256
from app.oidc.grants import hot, refresh_token
from app.oidc.grants.common import Form
from app.oidc.runtime import runtime
from tests.conftest import AccountCredentials, new_account
from tests.oidc.helpers import REDIRECT, code_tokens, get_code, make_setup

BASE = "http://testserver"


@pytest.fixture
async def setup(admin: AuthPIAdmin):
    return await make_setup(admin)


async def _keys_and_client(app: FastAPI, issuer_id: str, client_id: str):  # noqa: ANN202
    rt = runtime(app)
    keys = await rt.keys.get(rt.session_factory(), issuer_id)
    client = await rt.clients.get(rt.session_factory(), issuer_id, client_id)
    assert keys is not None
    assert client is not None
    return rt, keys, client


def _hash(app: FastAPI, kind: str, token: str) -> str:
    return hmac_sha256(app.state.secret_key, f"{kind}:{token}")


async def _token_row(pg: asyncpg.Pool, app: FastAPI, raw: str) -> asyncpg.Record | None:
    return await pg.fetchrow("SELECT id, status, grant_id, used_at FROM refresh_tokens WHERE token_hash = $1",
                             _hash(app, "refresh", raw))


async def _snapshot(pg: asyncpg.Pool, account_id: str) -> tuple:
    """Everything the two paths write, for 'nothing changed' assertions."""
    return (
        [tuple(r) for r in await pg.fetch(
            "SELECT id, status, used_at FROM refresh_tokens WHERE account_id = $1 ORDER BY id", account_id)],
        [tuple(r) for r in await pg.fetch(
            "SELECT id, status FROM oidc_grants WHERE account_id = $1 ORDER BY id", account_id)],
        [tuple(r) for r in await pg.fetch(
            "SELECT id, used_at, grant_id FROM authorization_codes WHERE account_id = $1 ORDER BY id",
            account_id)],
        [tuple(r) for r in await pg.fetch(
            "SELECT id, refresh_count, last_activity_at FROM login_sessions WHERE account_id = $1 "
            "ORDER BY id", account_id)],
        await pg.fetchval("SELECT count(*) FROM events WHERE account_id = $1 "
                          "AND type NOT LIKE 'api-key.verif%'", account_id),
    )


def _refresh_form(raw: str, **extra: str) -> Form:
    return Form([("grant_type", "refresh_token"), ("refresh_token", raw), *extra.items()])


class TestRefreshInOneStatement:
    async def test_the_app_serves_them_from_its_token_pool(self, app: FastAPI, pg: asyncpg.Pool) -> None:
        assert app.state.token_pool is not None
        names = {r["application_name"] for r in await pg.fetch(
            "SELECT application_name FROM pg_stat_activity WHERE datname = current_database()")}
        assert "authpi-token" in names

    async def test_rotates_and_writes_what_the_orm_path_writes(
            self, app: FastAPI, client: httpx.AsyncClient, setup, account: AccountCredentials,
            pg: asyncpg.Pool) -> None:
        tokens = await code_tokens(client, setup)
        rt, keys, web = await _keys_and_client(app, setup.issuer_id, setup.web_id)
        before = await _token_row(pg, app, tokens["refresh_token"])
        body = await hot.refresh(app.state.token_pool, keys, rt.server_key, web,
                                 _refresh_form(tokens["refresh_token"], scope="openid profile"))
        assert body is not None
        assert body["scope"] == "openid profile"
        assert body["refresh_token"] != tokens["refresh_token"]
        old = await _token_row(pg, app, tokens["refresh_token"])
        new = await _token_row(pg, app, body["refresh_token"])
        assert old["status"] == "rotated"
        assert old["used_at"] is not None
        assert new["status"] == "active"
        assert new["grant_id"] == before["grant_id"]
        # The ORM path on the new token, for comparison: both write the same event and counters.
        async with app.state.db.unit_of_work() as session:
            orm_body = await refresh_token.refresh(session, keys, rt.server_key, web,
                                                   _refresh_form(body["refresh_token"],
                                                                 scope="openid profile"))
        assert isinstance(orm_body, dict)
        assert set(orm_body) == set(body)
        events = await pg.fetch(
            "SELECT user_id, client_id, issuer_id, org_id, source, subject, data, auth, deliverable "
            "FROM events WHERE account_id = $1 AND type = 'session.token-refreshed' ORDER BY id",
            account.account_id)
        assert len(events) == 2
        hot_event, orm_event = ({k: (json.loads(v) if k in ("subject", "data", "auth") else v)
                                 for k, v in e.items()} for e in events)
        assert hot_event == orm_event
        assert hot_event["data"] == {"grant_id": before["grant_id"], "scope": "openid profile"}
        assert hot_event["deliverable"] is True
        count = await pg.fetchval("SELECT refresh_count FROM login_sessions s JOIN oidc_grants g "
                                  "ON g.session_id = s.id WHERE g.id = $1", before["grant_id"])
        assert count == 2
        # The tokens it minted carry the same claims as the ORM path's.
        from joserfc import jwt
        from joserfc.jwk import KeySet

        jwks = KeySet.import_key_set((await client.get(f"/{setup.issuer_id}/jwks.json")).json())
        for name in ("access_token", "id_token"):
            a = dict(jwt.decode(body[name], jwks).claims)
            b = dict(jwt.decode(orm_body[name], jwks).claims)
            for volatile in ("iat", "exp", "jti"):
                a.pop(volatile, None)
                b.pop(volatile, None)
            assert a == b

    async def test_its_event_carries_the_request_id_as_record_writes_it(
            self, client: httpx.AsyncClient, setup, account: AccountCredentials, pg: asyncpg.Pool) -> None:
        tokens = await code_tokens(client, setup)
        r = await client.post(f"/{setup.issuer_id}/token", data={
            "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
            "client_id": setup.web_id, "client_secret": setup.web_secret},
            headers={"X-Request-Id": "refresh-trace-1"})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/json"
        assert r.headers["cache-control"] == "no-store"
        rows = await pg.fetch("SELECT trace FROM events WHERE account_id = $1 "
                              "AND type = 'session.token-refreshed'", account.account_id)
        assert [row["trace"] for row in rows] == ["refresh-trace-1"]

    async def test_declines_a_reused_token_and_changes_nothing(
            self, app: FastAPI, client: httpx.AsyncClient, setup, account: AccountCredentials,
            pg: asyncpg.Pool) -> None:
        tokens = await code_tokens(client, setup)
        rt, keys, web = await _keys_and_client(app, setup.issuer_id, setup.web_id)
        rotated = await hot.refresh(app.state.token_pool, keys, rt.server_key, web,
                                    _refresh_form(tokens["refresh_token"]))
        assert rotated is not None
        before = await _snapshot(pg, account.account_id)
        again = await hot.refresh(app.state.token_pool, keys, rt.server_key, web,
                                  _refresh_form(tokens["refresh_token"]))
        assert again is None
        assert await _snapshot(pg, account.account_id) == before
        # Through the endpoint the ORM path then sees the reuse and revokes the family.
        r = await client.post(f"/{setup.issuer_id}/token", data={
            "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
            "client_id": setup.web_id, "client_secret": setup.web_secret})
        assert r.json()["error"] == "invalid_grant"
        assert (await _token_row(pg, app, rotated["refresh_token"]))["status"] == "revoked"

    @pytest.mark.parametrize("extra", [{"scope": "openid invoices:admin"}, {"resource": "https://other.example"}])
    async def test_declines_what_the_grant_does_not_cover(
            self, app: FastAPI, client: httpx.AsyncClient, setup, account: AccountCredentials,
            pg: asyncpg.Pool, extra: dict[str, str]) -> None:
        tokens = await code_tokens(client, setup)
        rt, keys, web = await _keys_and_client(app, setup.issuer_id, setup.web_id)
        before = await _snapshot(pg, account.account_id)
        assert await hot.refresh(app.state.token_pool, keys, rt.server_key, web,
                                 _refresh_form(tokens["refresh_token"], **extra)) is None
        assert await _snapshot(pg, account.account_id) == before

    async def test_declines_for_a_blocked_user(
            self, app: FastAPI, client: httpx.AsyncClient, setup, admin: AuthPIAdmin,
            account: AccountCredentials, pg: asyncpg.Pool) -> None:
        tokens = await code_tokens(client, setup)
        rt, keys, web = await _keys_and_client(app, setup.issuer_id, setup.web_id)
        await admin.issuer(setup.issuer_id).users.update(setup.user_id, {"status": "blocked"})
        before = await _snapshot(pg, account.account_id)
        assert await hot.refresh(app.state.token_pool, keys, rt.server_key, web,
                                 _refresh_form(tokens["refresh_token"])) is None
        assert await _snapshot(pg, account.account_id) == before

    async def test_another_tenants_client_cannot_rotate(
            self, app: FastAPI, client: httpx.AsyncClient, setup, pg: asyncpg.Pool,
            account: AccountCredentials) -> None:
        from authpi_admin import AuthPIAdmin as Admin

        tokens = await code_tokens(client, setup)
        other = await new_account(app, "other")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
            other_setup = await make_setup(Admin(api_key=other.basic, base_url=BASE, http_client=http))
        rt, keys, web = await _keys_and_client(app, other_setup.issuer_id, other_setup.web_id)
        before = await _snapshot(pg, account.account_id)
        assert await hot.refresh(app.state.token_pool, keys, rt.server_key, web,
                                 _refresh_form(tokens["refresh_token"])) is None
        assert await _snapshot(pg, account.account_id) == before

    async def test_concurrent_presentations_rotate_once_and_revoke_the_family(
            self, client: httpx.AsyncClient, setup, admin: AuthPIAdmin) -> None:
        tokens = await code_tokens(client, setup)
        form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                "client_id": setup.web_id, "client_secret": setup.web_secret}
        answers = await asyncio.gather(*(client.post(f"/{setup.issuer_id}/token", data=form)
                                         for _ in range(4)))
        statuses = sorted(r.status_code for r in answers)
        assert statuses == [200, 400, 400, 400]
        winner = next(r.json() for r in answers if r.status_code == 200)
        # The losers were reuse: the family, including the winner's new token, is revoked.
        after = await client.post(f"/{setup.issuer_id}/token",
                                  data={**form, "refresh_token": winner["refresh_token"]})
        assert after.json()["error"] == "invalid_grant"
        assert (await admin.events.list(event_types="session.compromised")).data


class TestCodeInOneStatement:
    async def test_redeems_and_declines_a_replay(
            self, app: FastAPI, client: httpx.AsyncClient, setup, account: AccountCredentials,
            pg: asyncpg.Pool) -> None:
        code, verifier = await get_code(client, setup)
        rt, keys, web = await _keys_and_client(app, setup.issuer_id, setup.web_id)
        form = Form([("grant_type", "authorization_code"), ("code", code), ("redirect_uri", REDIRECT),
                     ("code_verifier", verifier)])
        body = await hot.exchange(app.state.token_pool, keys, rt.server_key, web, form)
        assert body is not None
        assert {"access_token", "id_token", "refresh_token"} <= set(body)
        row = await pg.fetchrow("SELECT used_at, grant_id FROM authorization_codes WHERE code_hash = $1",
                                _hash(app, "code", code))
        assert row["used_at"] is not None
        grant = await pg.fetchrow("SELECT user_id, client_id, status FROM oidc_grants WHERE id = $1",
                                  row["grant_id"])
        assert tuple(grant) == (setup.user_id, setup.web_id, "active")
        assert (await _token_row(pg, app, body["refresh_token"]))["grant_id"] == row["grant_id"]
        before = await _snapshot(pg, account.account_id)
        assert await hot.exchange(app.state.token_pool, keys, rt.server_key, web, form) is None
        assert await _snapshot(pg, account.account_id) == before
        # The endpoint's ORM path treats the replay as such: what was issued is revoked.
        r = await client.post(f"/{setup.issuer_id}/token", data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "code_verifier": verifier, "client_id": setup.web_id, "client_secret": setup.web_secret})
        assert r.json()["error"] == "invalid_grant"
        assert await pg.fetchval("SELECT status FROM oidc_grants WHERE id = $1", row["grant_id"]) == "revoked"

    @pytest.mark.parametrize("field", ["code_verifier", "redirect_uri"])
    async def test_a_mismatch_is_left_to_the_orm_path(
            self, app: FastAPI, client: httpx.AsyncClient, setup, account: AccountCredentials,
            pg: asyncpg.Pool, field: str) -> None:
        code, verifier = await get_code(client, setup)
        rt, keys, web = await _keys_and_client(app, setup.issuer_id, setup.web_id)
        values = {"code": code, "redirect_uri": REDIRECT, "code_verifier": verifier}
        values[field] = (hashlib.sha256(b"x").hexdigest() if field == "code_verifier"
                         else "http://localhost:3000/elsewhere")
        before = await _snapshot(pg, account.account_id)
        assert await hot.exchange(app.state.token_pool, keys, rt.server_key, web,
                                  Form([("grant_type", "authorization_code"), *values.items()])) is None
        assert await _snapshot(pg, account.account_id) == before
        r = await client.post(f"/{setup.issuer_id}/token", data={
            "grant_type": "authorization_code", **values, "client_id": setup.web_id,
            "client_secret": setup.web_secret})
        assert r.json()["error"] == "invalid_grant"
        # The ORM path spent the code, as before.
        assert await pg.fetchval("SELECT used_at FROM authorization_codes WHERE code_hash = $1",
                                 _hash(app, "code", code)) is not None
