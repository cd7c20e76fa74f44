"""The shared failure throttle (app.runtime.throttle): its rules, and state shared across processes,
in PostgreSQL (the default) and in Redis (AUTHPI_REDIS_URL)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest

from app.core.db import to_asyncpg_dsn
from app.runtime.throttle import FailureThrottle, PostgresStore, RedisStore, Store

LIMIT, ADDRESS_LIMIT, WINDOW = 4, 10, 60
REDIS_URL = os.environ.get("AUTHPI_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

# Run in another interpreter: `failures` failures, then what `admit` answers there.
_CHILD = """
import asyncio, json, sys
import asyncpg
from app.runtime.throttle import FailureThrottle, PostgresStore, RedisStore
async def main(backend, target, kind, cred, addr, failures, limit, address_limit, window):
    pool = None
    if backend == "postgres":
        pool = await asyncpg.create_pool(target, min_size=1, max_size=1)
        store = PostgresStore(pool)
    else:
        store = RedisStore(target)
    t = FailureThrottle(store, limit=limit, address_limit=address_limit, window_seconds=window)
    for _ in range(failures):
        await t.failed(kind, cred, addr)
    print(json.dumps({"admit": await t.admit(kind, cred, addr)}))
    if pool is not None:
        await pool.close()
    else:
        await store.close()
asyncio.run(main(*sys.argv[1:6], *map(int, sys.argv[6:10])))
"""


def other_process(backend: str, target: str, kind: str, cred: str, addr: str, failures: int) -> int | None:
    args = [backend, target, kind, cred, addr, *map(str, (failures, LIMIT, ADDRESS_LIMIT, WINDOW))]
    out = subprocess.run([sys.executable, "-c", _CHILD, *args],
                         capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["admit"]


def redis_available() -> bool:
    try:
        import redis
    except ImportError:
        return False
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except Exception:  # noqa: BLE001
        return False


@pytest.fixture(params=["postgres", "redis"])
async def backend(request: pytest.FixtureRequest, database_url: str
                  ) -> AsyncIterator[tuple[str, str, Callable[[], FailureThrottle]]]:
    """(backend name, its address for another process, a factory of throttles on it)."""
    closers: list[Callable[[], object]] = []
    if request.param == "postgres":
        dsn = to_asyncpg_dsn(database_url)
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        closers.append(pool.close)
        target = dsn

        def store() -> Store:
            return PostgresStore(pool)
    else:
        if not redis_available():
            pytest.skip(f"no Redis at {REDIS_URL}")
        target = REDIS_URL
        stores: list[RedisStore] = []

        def store() -> Store:
            s = RedisStore(REDIS_URL)
            stores.append(s)
            return s
        closers.append(lambda: asyncio.gather(*(s.close() for s in stores)))

    def make() -> FailureThrottle:
        t = FailureThrottle(store(), limit=LIMIT, address_limit=ADDRESS_LIMIT, window_seconds=WINDOW)
        t.max_delay = 0.02
        return t

    yield request.param, target, make
    for close in closers:
        result = close()
        if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
            await result


def fresh() -> str:
    return uuid.uuid4().hex[:12]


def addr(n: int) -> str:
    return f"192.0.2.{n}"


class TestRules:
    async def test_a_credential_and_address_pair_is_refused_at_the_limit(self, backend):
        _, _, make = backend
        t, cred, a = make(), fresh(), f"10.9.{uuid.uuid4().int % 250}.1"
        for _ in range(LIMIT):
            assert await t.admit("api_key", cred, a) is None
            await t.failed("api_key", cred, a)
        retry = await t.admit("api_key", cred, a)
        assert retry is not None
        assert 1 <= retry <= WINDOW

    async def test_the_holder_from_another_address_is_admitted(self, backend):
        _, _, make = backend
        t, cred = make(), fresh()
        base = uuid.uuid4().int % 200
        for i in range(5 * LIMIT):  # a key-id (or username) flood from many addresses
            await t.failed("api_key", cred, f"10.{base}.{i}.7")
        assert await t.admit("api_key", cred, f"10.{base}.250.250") is None

    async def test_an_address_failing_on_many_credentials_is_refused_for_new_ones(self, backend):
        _, _, make = backend
        t, a = make(), f"10.8.{uuid.uuid4().int % 250}.3"
        for _ in range(ADDRESS_LIMIT):
            await t.failed("password", fresh(), a)
        assert await t.admit("password", fresh(), a) is not None
        assert await t.admit("password", fresh(), f"10.7.{uuid.uuid4().int % 250}.3") is None

    async def test_unknown_credentials_count_against_the_address_only(self, backend):
        _, _, make = backend
        t, a = make(), f"10.6.{uuid.uuid4().int % 250}.3"
        for _ in range(ADDRESS_LIMIT - 1):
            await t.failed("api_key", None, a)
        assert await t.admit("api_key", None, a) is None
        await t.failed("api_key", None, a)
        assert await t.admit("api_key", fresh(), a) is not None

    async def test_progressive_delay_per_credential(self, backend):
        _, _, make = backend
        t = make()
        assert t.delay_for(LIMIT - 1) == 0
        assert 0 < t.delay_for(LIMIT) <= t.delay_for(3 * LIMIT) <= t.max_delay
        cred = fresh()
        for i in range(2 * LIMIT):
            await t.failed("client", cred, f"10.5.{i}.{uuid.uuid4().int % 250}")
        started = asyncio.get_running_loop().time()
        assert await t.admit("client", cred, "10.4.4.4") is None  # slowed, never refused
        assert asyncio.get_running_loop().time() - started >= t.delay_for(2 * LIMIT) * 0.9

    async def test_a_success_clears_the_pair(self, backend):
        _, _, make = backend
        t, cred, a = make(), fresh(), f"10.3.{uuid.uuid4().int % 250}.9"
        for _ in range(LIMIT - 1):
            await t.failed("agent", cred, a)
        await t.succeeded("agent", cred, a)
        await t.failed("agent", cred, a)
        assert await t.admit("agent", cred, a) is None

    async def test_ipv6_is_counted_per_64(self, backend):
        _, _, make = backend
        t, cred, prefix = make(), fresh(), f"2001:db8:{uuid.uuid4().int % 65000:x}:1"
        for i in range(LIMIT):
            await t.failed("api_key", cred, f"{prefix}::{i + 1:x}")  # a new address each time
        assert await t.admit("api_key", cred, f"{prefix}:ffff::1") is not None
        assert await t.admit("api_key", cred, f"{prefix[:-1]}2::1") is None  # another /64


class TestAcrossProcesses:
    async def test_failures_in_two_processes_add_up(self, backend):
        name, target, make = backend
        t, cred, a = make(), fresh(), f"10.2.{uuid.uuid4().int % 250}.1"
        # The other process spends all but one attempt; it is still admitted there...
        assert other_process(name, target, "password", cred, a, LIMIT - 1) is None
        # ...this one fails once more: the limit is reached for both.
        assert await t.admit("password", cred, a) is None
        await t.failed("password", cred, a)
        assert await t.admit("password", cred, a) is not None
        assert other_process(name, target, "password", cred, a, 0) is not None
