"""GET /v1/me with API keys: the quickstart's step 5, every refusal, the cache and its invalidation."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable

import asyncpg
import httpx
import pytest
from authpi_admin import AuthPIAdmin
from authpi_admin.errors import AuthenticationError
from fastapi import FastAPI

from app.api_key.verification import KeyVerifier
from app.core.ids import now_ms
from tests.api_key.conftest import OrgRef, fresh_address, sdk_for, set_org
from tests.conftest import AccountCredentials

QUICKSTART_KEY = {"type": "api_key", "name": "globex-backend", "restrictions": {"scopes": ["invoices:read"]}}


def verifier(app: FastAPI) -> KeyVerifier:
    return app.state.key_verifier


async def org_key(admin: AuthPIAdmin, org: OrgRef, **overrides: object):  # noqa: ANN201
    return await admin.issuer(org.issuer_id).organization(org.org_id).api_keys.create(
        {**QUICKSTART_KEY, **overrides})


async def me(client: httpx.AsyncClient, key_id: str, secret: str, **kw: object) -> httpx.Response:
    return await client.get("/v1/me", auth=(key_id, secret), **kw)


def assert_401(r: httpx.Response) -> None:
    assert r.status_code == 401, r.text
    body = r.json()
    assert body["error"] == "unauthorized"
    assert body["retryable"] is False
    assert body["error_description"]
    assert "basic" in r.headers["www-authenticate"].lower()


class TestQuickstartStep5:
    async def test_whoami_through_the_sdk(self, app: FastAPI, admin: AuthPIAdmin, org: OrgRef):
        key = await org_key(admin, org)
        async with sdk_for(app, (key.id, key.secret_plain)) as caller:
            who = await caller.whoami()
        assert who["type"] == "api_key"
        assert who["organizations"][0] == {"org_id": org.org_id, "scopes": ["invoices:read"]}
        assert who["accounts"] == []
        assert who["key_id"] == key.id
        assert who["issuer_id"] == org.issuer_id

    async def test_raw_http_and_trail(self, admin: AuthPIAdmin, org: OrgRef, anon: httpx.AsyncClient):
        key = await org_key(admin, org)
        token = base64.b64encode(f"{key.id}:{key.secret_plain}".encode()).decode()
        r = await anon.get("/v1/me", headers={"Authorization": f"Basic {token}"})
        assert r.status_code == 200
        assert r.json() == {"data": {"type": "api_key", "accounts": [], "key_id": key.id,
                                     "issuer_id": org.issuer_id,
                                     "organizations": [{"org_id": org.org_id, "scopes": ["invoices:read"]}]}}
        # The first (cold) verification's event is written before the response.
        page = await admin.events.list(limit=20)
        assert [e.type for e in page.data[:2]] == ["api-key.verified", "api-key.created"]
        verified = page.data[0]
        assert verified.subject == {"type": "api_key", "id": key.id, "org_id": org.org_id,
                                    "issuer_id": org.issuer_id}
        assert verified.auth["key_id"] == key.id

    async def test_every_warm_verification_is_one_event(self, app: FastAPI, admin: AuthPIAdmin, org: OrgRef,
                                                        anon: httpx.AsyncClient):
        key = await org_key(admin, org)
        for _ in range(5):
            assert (await me(anon, key.id, key.secret_plain)).status_code == 200
        await app.state.event_batcher.flush()
        page = await admin.events.list(event_types="api-key.verified", limit=50)
        assert len([e for e in page.data if e.subject["id"] == key.id]) == 5

    async def test_other_routes_do_not_record_verified(self, admin: AuthPIAdmin, account: AccountCredentials,
                                                       app: FastAPI):
        await admin.api_keys.list()
        await admin.api_keys.list()
        await app.state.event_batcher.flush()
        page = await admin.events.list(event_types="api-key.verified", limit=50)
        # Only the SDK's one account resolution through /v1/me.
        assert len(page.data) == 1


class TestQuickstartOverRealHttp:
    async def test_whoami_and_trail_on_a_live_server(self, live_server, account: AccountCredentials,
                                                     admin: AuthPIAdmin, org: OrgRef, pg: asyncpg.Pool):
        async with AuthPIAdmin(api_key=account.basic, base_url=live_server.url) as owner:
            key = await org_key(owner, org)  # as the quickstart: one admin client throughout
            async with AuthPIAdmin(api_key=(key.id, key.secret_plain), base_url=live_server.url) as caller:
                who = await caller.whoami()
            assert who["type"] == "api_key"
            assert who["organizations"][0] == {"org_id": org.org_id, "scopes": ["invoices:read"]}
            page = await owner.events.list(limit=20)
        assert [e.type for e in page.data[:2]] == ["api-key.verified", "api-key.created"]
        assert page.data[0].subject["id"] == key.id
        r = httpx.get(live_server.url + "/v1/me", auth=(key.id, key.secret_plain + "x"))
        assert_401(r)

    async def test_no_secret_or_hash_in_any_event(self, admin: AuthPIAdmin, org: OrgRef, pg: asyncpg.Pool,
                                                  account: AccountCredentials, app: FastAPI,
                                                  anon: httpx.AsyncClient):
        key = await org_key(admin, org)
        secrets = [key.secret_plain, account.secret]
        await me(anon, key.id, key.secret_plain)
        await me(anon, key.id, "sk_not_the_secret")
        secrets.append((await admin.api_keys.rotate(key.id, {"grace_period_seconds": 5})).secret_plain)
        await me(anon, key.id, secrets[-1])
        await admin.api_keys.revoke(key.id)
        await app.state.event_batcher.flush()
        rows = await pg.fetch("SELECT type, subject::text, data::text, auth::text FROM events "
                              "WHERE account_id = $1", account.account_id)
        assert {"api-key.created", "api-key.verified", "api-key.verification.failed", "api-key.rotated",
                "api-key.revoked"} <= {r["type"] for r in rows}
        text = " ".join(str(tuple(r)) for r in rows)
        assert "$argon2" not in text
        assert "sk_not_the_secret" not in text
        for secret in secrets:
            assert secret not in text


class TestRefusals:
    @pytest.mark.parametrize("header", [
        "Basic", "Basic !!!", "Basic " + base64.b64encode(b"nocolon").decode(),
        "Basic " + base64.b64encode(b":secret").decode(), "Bearer", "Token abc",
    ])
    async def test_malformed_header_is_401(self, anon: httpx.AsyncClient, header: str):
        assert_401(await anon.get("/v1/me", headers={"Authorization": header}))

    async def test_malformed_key_id_is_401_without_lookup(self, app: FastAPI, anon: httpx.AsyncClient):
        before = verifier(app).stats["cold"]
        assert_401(await me(anon, "key_short", "x"))
        assert_401(await me(anon, "usr_01jzzzzzzzzzzzzzzzzzzzzzzz", "x"))
        assert_401(await me(anon, "key_01jzzzzzzzzzzzzzzzzzzzzzzz", "x" * 300))
        assert verifier(app).stats["cold"] == before

    async def test_unknown_key_is_401_without_hashing(self, app: FastAPI, anon: httpx.AsyncClient):
        before = verifier(app).argon2.hashes
        assert_401(await me(anon, "key_01jzzzzzzzzzzzzzzzzzzzzzzz", "sk_whatever"))
        assert_401(await me(anon, "key_01jzzzzzzzzzzzzzzzzzzzzzzz", "sk_whatever"))
        assert verifier(app).argon2.hashes == before

    async def test_wrong_secret_is_401_even_for_a_warm_key(self, admin: AuthPIAdmin, org: OrgRef,
                                                           anon: httpx.AsyncClient):
        key = await org_key(admin, org)
        assert_401(await me(anon, key.id, key.secret_plain + "x"))
        assert (await me(anon, key.id, key.secret_plain)).status_code == 200
        assert_401(await me(anon, key.id, key.secret_plain[:-1]))

    async def test_blocked_and_revoked_are_401(self, admin: AuthPIAdmin, org: OrgRef,
                                               anon: httpx.AsyncClient):
        key = await org_key(admin, org)
        assert (await me(anon, key.id, key.secret_plain)).status_code == 200
        await admin.api_keys.block(key.id)
        assert_401(await me(anon, key.id, key.secret_plain))
        await admin.api_keys.unblock(key.id)
        assert (await me(anon, key.id, key.secret_plain)).status_code == 200
        await admin.api_keys.revoke(key.id)
        assert_401(await me(anon, key.id, key.secret_plain))

    async def test_deleted_key_is_401(self, admin: AuthPIAdmin, org: OrgRef, anon: httpx.AsyncClient):
        key = await org_key(admin, org)
        assert (await me(anon, key.id, key.secret_plain)).status_code == 200
        await admin.api_keys.delete(key.id)
        assert_401(await me(anon, key.id, key.secret_plain))

    async def test_expired_is_401_even_when_cached(self, app: FastAPI, admin: AuthPIAdmin, org: OrgRef,
                                                   anon: httpx.AsyncClient):
        key = await org_key(admin, org, expires_at=now_ms() + 1500)
        assert (await me(anon, key.id, key.secret_plain)).status_code == 200
        warm = verifier(app).stats["warm"]
        assert (await me(anon, key.id, key.secret_plain)).status_code == 200
        assert verifier(app).stats["warm"] == warm + 1
        await asyncio.sleep(1.6)
        assert_401(await me(anon, key.id, key.secret_plain))
        got = await admin.api_keys.get(key.id)
        assert got.status == "expired"

    async def test_suspended_or_deleted_org_is_401(self, app: FastAPI, admin: AuthPIAdmin, org: OrgRef,
                                                   anon: httpx.AsyncClient):
        key = await org_key(admin, org)
        assert (await me(anon, key.id, key.secret_plain)).status_code == 200
        await set_org(app, org, status="suspended")
        assert_401(await me(anon, key.id, key.secret_plain))
        await set_org(app, org, status="active")
        assert (await me(anon, key.id, key.secret_plain)).status_code == 200
        await set_org(app, org, status="deleted")
        assert_401(await me(anon, key.id, key.secret_plain))

    async def test_suspended_or_deleted_issuer_is_401_even_when_cached(
            self, admin: AuthPIAdmin, org: OrgRef, anon: httpx.AsyncClient):
        key = await org_key(admin, org)
        for _ in range(2):  # cold, then served from the cache
            assert (await me(anon, key.id, key.secret_plain)).status_code == 200
        await admin.issuers.update(org.issuer_id, {"status": "suspended"})
        assert_401(await me(anon, key.id, key.secret_plain))
        await admin.issuers.update(org.issuer_id, {"status": "active"})
        assert (await me(anon, key.id, key.secret_plain)).status_code == 200
        await admin.issuers.delete(org.issuer_id)
        assert_401(await me(anon, key.id, key.secret_plain))

    async def test_failures_are_in_the_trail_aggregated(self, app: FastAPI, admin: AuthPIAdmin, org: OrgRef,
                                                        client_from: Callable[..., httpx.AsyncClient]):
        key = await org_key(admin, org)
        limit = verifier(app).throttle.limit
        verifier(app).throttle.max_delay = 0.05
        for _ in range(limit + 3):
            async with client_from() as c:
                await me(c, key.id, "sk_wrong")
        await app.state.event_batcher.flush()
        page = await admin.events.list(event_types="api-key.verification.failed", limit=50)
        mine = [e for e in page.data if e.subject["id"] == key.id]
        # One for the first failure of the window, one when the throttle engaged: not one per attempt.
        assert [e.data["failures_in_window"] for e in mine] == [limit, 1]
        assert mine[0].data["throttled"] is True
        assert mine[1].data["reason"] == "wrong_secret"
        assert all("sk_wrong" not in str(e.model_dump()) for e in mine)


class TestIpAllowlist:
    async def test_outside_is_403_inside_is_200(self, admin: AuthPIAdmin, org: OrgRef,
                                                client_from: Callable[..., httpx.AsyncClient]):
        key = await org_key(admin, org, restrictions={"scopes": ["invoices:read"],
                                                      "ip_allowlist": ["10.250.0.0/16"]})
        async with client_from("10.250.3.4") as inside:
            assert (await me(inside, key.id, key.secret_plain)).status_code == 200
        async with client_from("10.1.2.3") as outside:
            for _ in range(2):  # cold, then warm
                r = await me(outside, key.id, key.secret_plain, headers={"X-Forwarded-For": "10.250.3.4"})
                assert r.status_code == 403
                assert r.json()["error"] == "access_denied"
            # A wrong secret from outside is still just a 401 (the allowlist is not disclosed).
            assert_401(await me(outside, key.id, "sk_wrong"))


class TestThrottling:
    async def test_per_key_and_address_429_with_retry_after(
            self, app: FastAPI, admin: AuthPIAdmin, org: OrgRef,
            client_from: Callable[..., httpx.AsyncClient]):
        key = await org_key(admin, org)
        async with client_from() as good:
            assert (await me(good, key.id, key.secret_plain)).status_code == 200
        limit = verifier(app).throttle.limit
        async with client_from() as attacker:
            for _ in range(limit):
                assert_401(await me(attacker, key.id, "sk_wrong"))
            r = await me(attacker, key.id, "sk_wrong")
            assert r.status_code == 429
            assert r.headers["retry-after"].isdigit()
            assert int(r.headers["retry-after"]) >= 1
            assert r.json()["retry_after"] == int(r.headers["retry-after"])
            assert r.json()["retryable"] is True
        # The legitimate holder, warm in the cache, is not locked out by the attack...
        async with client_from() as good:
            assert (await me(good, key.id, key.secret_plain)).status_code == 200
        # ...nor cold, from an address of its own.
        verifier(app).cache.clear()
        async with client_from() as good:
            assert (await me(good, key.id, key.secret_plain)).status_code == 200

    async def test_a_key_id_flood_from_many_addresses_never_locks_the_holder_out(
            self, app: FastAPI, admin: AuthPIAdmin, org: OrgRef,
            client_from: Callable[..., httpx.AsyncClient]):
        key = await org_key(admin, org)
        v = verifier(app)
        saved = v.throttle.max_delay
        v.throttle.max_delay = 0.05  # the progressive delay, short for the test
        try:
            for _ in range(3 * v.throttle.limit):
                async with client_from() as c:  # a new address each time, knowing only the id
                    r = await me(c, key.id, "sk_wrong")
                    assert r.status_code == 401, r.text
            v.cache.clear()  # cold: the holder's secret goes through the throttle and argon2
            async with client_from() as holder:
                assert (await me(holder, key.id, key.secret_plain)).status_code == 200
        finally:
            v.throttle.max_delay = saved

    async def test_per_address_429_before_any_lookup(self, app: FastAPI, admin: AuthPIAdmin, org: OrgRef,
                                                     client_from: Callable[..., httpx.AsyncClient]):
        key = await org_key(admin, org)
        cold = await org_key(admin, org, name="cold")
        address = fresh_address()
        async with client_from(address) as c:
            assert (await me(c, key.id, key.secret_plain)).status_code == 200
            limit = verifier(app).throttle.address_limit
            for i in range(limit):
                assert_401(await me(c, f"key_01jzzzzzzzzzzzzzzzzzzzz{i:03d}", "sk_x"))
            lookups = verifier(app).stats["cold"]
            r = await me(c, "key_01jzzzzzzzzzzzzzzzzzzzzzzz", "sk_x")
            assert r.status_code == 429
            assert int(r.headers["retry-after"]) >= 1
            assert verifier(app).stats["cold"] == lookups
            # A warm valid key from the throttled address still works; a cold one must wait.
            assert (await me(c, key.id, key.secret_plain)).status_code == 200
            assert (await me(c, cold.id, cold.secret_plain)).status_code == 429

    async def test_excess_argon2_work_is_shed(self, app: FastAPI, admin: AuthPIAdmin, org: OrgRef,
                                              client_from: Callable[..., httpx.AsyncClient]):
        key = await org_key(admin, org)
        gate = verifier(app).argon2
        saved = gate.max_pending
        gate.max_pending = 2
        try:
            async def attempt(i: int) -> int:
                async with client_from() as c:
                    return (await me(c, key.id, f"sk_wrong_{i}")).status_code
            codes = await asyncio.gather(*(attempt(i) for i in range(10)))
        finally:
            gate.max_pending = saved
        assert sorted(set(codes)) == [401, 429]

    async def test_a_burst_of_one_cold_credential_hashes_once(self, app: FastAPI, admin: AuthPIAdmin,
                                                              org: OrgRef, anon: httpx.AsyncClient):
        key = await org_key(admin, org)
        before = verifier(app).argon2.hashes
        codes = await asyncio.gather(*(me(anon, key.id, key.secret_plain) for _ in range(8)))
        assert {r.status_code for r in codes} == {200}
        assert verifier(app).argon2.hashes - before == 1


class TestCache:
    async def test_warm_key_skips_argon2_and_database(self, app: FastAPI, admin: AuthPIAdmin, org: OrgRef,
                                                      anon: httpx.AsyncClient):
        key = await org_key(admin, org)
        assert (await me(anon, key.id, key.secret_plain)).status_code == 200
        v = verifier(app)
        hashes, cold = v.argon2.hashes, v.stats["cold"]
        for _ in range(10):
            assert (await me(anon, key.id, key.secret_plain)).status_code == 200
        assert (v.argon2.hashes, v.stats["cold"]) == (hashes, cold)

    async def test_scope_change_is_seen_at_once(self, admin: AuthPIAdmin, org: OrgRef,
                                                anon: httpx.AsyncClient):
        key = await org_key(admin, org)
        assert (await me(anon, key.id, key.secret_plain)).json()["data"]["organizations"][0]["scopes"] == [
            "invoices:read"]
        await admin.api_keys.update(key.id, {"restrictions": {"scopes": ["invoices:write"]}})
        assert (await me(anon, key.id, key.secret_plain)).json()["data"]["organizations"][0]["scopes"] == [
            "invoices:write"]

    async def test_org_narrowing_its_scopes_narrows_the_key(self, app: FastAPI, admin: AuthPIAdmin,
                                                            org: OrgRef, anon: httpx.AsyncClient):
        key = await org_key(admin, org, restrictions={"scopes": ["invoices:read", "users:read"]})
        first = (await me(anon, key.id, key.secret_plain)).json()["data"]["organizations"][0]["scopes"]
        assert len(first) == 2
        await set_org(app, org, scopes=["invoices:**"])
        got = (await me(anon, key.id, key.secret_plain)).json()["data"]["organizations"][0]["scopes"]
        assert got == ["invoices:read"]

    async def test_entries_age_out(self, app: FastAPI, admin: AuthPIAdmin, org: OrgRef,
                                   anon: httpx.AsyncClient):
        key = await org_key(admin, org)
        assert (await me(anon, key.id, key.secret_plain)).status_code == 200
        v = verifier(app)
        saved, v.cache.ttl = v.cache.ttl, 0.0
        try:
            cold = v.stats["cold"]
            assert (await me(anon, key.id, key.secret_plain)).status_code == 200
            assert v.stats["cold"] == cold + 1
        finally:
            v.cache.ttl = saved

    async def test_lost_listener_drops_the_cache_and_verifies_by_database(
            self, app: FastAPI, admin: AuthPIAdmin, org: OrgRef, anon: httpx.AsyncClient, pg: asyncpg.Pool):
        key = await org_key(admin, org)
        assert (await me(anon, key.id, key.secret_plain)).status_code == 200
        v = verifier(app)
        assert v.live()
        assert len(v.cache) > 0
        pid = await v.hub._conn.fetchval("SELECT pg_backend_pid()")
        await pg.execute("SELECT pg_terminate_backend($1)", pid)
        for _ in range(100):
            if not v.live():
                break
            await asyncio.sleep(0.01)
        assert len(v.cache) == 0 or not v.live()
        # Whatever the listener's state, a blocked key is refused.
        await admin.api_keys.block(key.id)
        assert_401(await me(anon, key.id, key.secret_plain))
        await admin.api_keys.unblock(key.id)
        for _ in range(200):
            if v.live():
                break
            await asyncio.sleep(0.05)
        assert v.live()
        assert (await me(anon, key.id, key.secret_plain)).status_code == 200


    async def test_listener_down_rechecks_the_database_without_argon2(
            self, app: FastAPI, admin: AuthPIAdmin, org: OrgRef, anon: httpx.AsyncClient):
        key = await org_key(admin, org)
        assert (await me(anon, key.id, key.secret_plain)).status_code == 200
        v = verifier(app)
        v.hub.connected = False  # as while the listener reconnects
        try:
            hashes, cold = v.argon2.hashes, v.stats["cold"]
            for _ in range(3):
                assert (await me(anon, key.id, key.secret_plain)).status_code == 200
            assert v.stats["cold"] == cold + 3  # each one read the key again...
            assert v.argon2.hashes == hashes  # ...and none hashed
            await admin.api_keys.block(key.id)
            assert_401(await me(anon, key.id, key.secret_plain))
            await admin.api_keys.unblock(key.id)
            await admin.api_keys.rotate(key.id)
            assert_401(await me(anon, key.id, key.secret_plain))  # the hash changed: argon2, refused
        finally:
            v.hub.connected = True
            v.cache.clear()


class TestRotationGrace:
    async def test_default_rotation_stops_the_old_secret_at_once(self, admin: AuthPIAdmin, org: OrgRef,
                                                                 anon: httpx.AsyncClient):
        key = await org_key(admin, org)
        assert (await me(anon, key.id, key.secret_plain)).status_code == 200
        rotated = await admin.api_keys.rotate(key.id)
        assert_401(await me(anon, key.id, key.secret_plain))
        assert (await me(anon, key.id, rotated.secret_plain)).status_code == 200

    async def test_grace_keeps_the_old_secret_until_it_ends(self, admin: AuthPIAdmin, org: OrgRef,
                                                            anon: httpx.AsyncClient):
        key = await org_key(admin, org)
        assert (await me(anon, key.id, key.secret_plain)).status_code == 200
        rotated = await admin.api_keys.rotate(key.id, {"grace_period_seconds": 2})
        assert (await me(anon, key.id, key.secret_plain)).status_code == 200
        assert (await me(anon, key.id, key.secret_plain)).status_code == 200  # warm, bounded by the grace
        assert (await me(anon, key.id, rotated.secret_plain)).status_code == 200
        await asyncio.sleep(2.1)
        assert_401(await me(anon, key.id, key.secret_plain))
        assert (await me(anon, key.id, rotated.secret_plain)).status_code == 200

    async def test_sdk_sees_401_as_authentication_error(self, app: FastAPI, admin: AuthPIAdmin, org: OrgRef):
        key = await org_key(admin, org)
        await admin.api_keys.revoke(key.id)
        async with sdk_for(app, (key.id, key.secret_plain)) as caller:
            with pytest.raises(AuthenticationError):
                await caller.whoami()


class TestHotRoute:
    async def test_warm_answer_matches_the_normal_stack(self, app: FastAPI, admin: AuthPIAdmin, org: OrgRef,
                                                        anon: httpx.AsyncClient):
        key = await org_key(admin, org)
        cold = await me(anon, key.id, key.secret_plain)  # the normal stack (a miss)
        warm = await me(anon, key.id, key.secret_plain)  # from the cache
        assert warm.json() == cold.json()
        assert warm.headers["content-type"] == "application/json"

    async def test_throttled_429_is_slowed_down_and_costs_no_lookup(
            self, app: FastAPI, client_from: Callable[..., httpx.AsyncClient]):
        v = verifier(app)
        saved, v.throttle_delay = v.throttle_delay, 0.3
        try:
            async with client_from() as c:
                for i in range(v.throttle.address_limit):
                    assert_401(await me(c, f"key_01jzzzzzzzzzzzzzzzzzzzz{i:03d}", "sk_x"))
                cold = v.stats["cold"]
                started = asyncio.get_running_loop().time()
                r = await me(c, "key_01jzzzzzzzzzzzzzzzzzzzyyyy", "sk_x")
                assert r.status_code == 429
                assert asyncio.get_running_loop().time() - started >= 0.3
                assert r.json()["error"] == "rate_limited"
                assert v.stats["cold"] == cold
        finally:
            v.throttle_delay = saved
