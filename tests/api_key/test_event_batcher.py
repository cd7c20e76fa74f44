"""The metered event batcher behind `api-key.verified`: timely, batched, lossless on a clean stop."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from fastapi import FastAPI

from app.core.auth import Principal
from app.events.batcher import EventBatcher
from tests.conftest import AccountCredentials


def template_for(account: AccountCredentials) -> tuple:
    from app.api_key.verification import verified_event_template

    principal = Principal(type="api_key", account_id=account.account_id, account_level=True,
                          key_id=account.key_id, org_id="org_x", issuer_id="i_authpi")
    return verified_event_template(principal)


async def count(pg: asyncpg.Pool, account: AccountCredentials) -> int:
    return await pg.fetchval("SELECT count(*) FROM events WHERE account_id = $1 "
                             "AND type = 'api-key.verified'", account.account_id)


@pytest.fixture
async def batcher(app: FastAPI):
    b = EventBatcher(app.state.runtime.pool, min_interval=0.05)
    b.start()
    yield b
    await b.shutdown()


class TestEventBatcher:
    async def test_written_within_a_second_without_an_explicit_flush(
            self, batcher: EventBatcher, account: AccountCredentials, pg: asyncpg.Pool):
        template = template_for(account)
        for _ in range(50):
            batcher.add_occurrence(template, '{"client_ip": "10.0.0.1"}')
        await asyncio.sleep(1.1)
        assert await count(pg, account) == 50

    async def test_ids_and_times_are_taken_when_queued(self, batcher: EventBatcher,
                                                       account: AccountCredentials, pg: asyncpg.Pool):
        template = template_for(account)
        ids = [batcher.add_occurrence(template, "{}") for _ in range(3)]
        await batcher.flush()
        rows = await pg.fetch("SELECT id, data::text FROM events WHERE account_id = $1 AND "
                              "type = 'api-key.verified' ORDER BY id", account.account_id)
        assert [r["id"] for r in rows] == sorted(ids)

    async def test_a_failed_copy_keeps_the_events_for_the_retry(self, app: FastAPI,
                                                                account: AccountCredentials,
                                                                pg: asyncpg.Pool):
        class FlakyPool:
            """The database away for one attempt."""

            def __init__(self, pool: asyncpg.Pool) -> None:
                self.pool, self.calls = pool, 0

            def acquire(self):  # noqa: ANN201
                self.calls += 1
                if self.calls == 1:
                    raise ConnectionError("database briefly away")
                return self.pool.acquire()

        b = EventBatcher(FlakyPool(app.state.runtime.pool))  # not started: flushes only when asked
        template = template_for(account)
        for _ in range(10):
            b.add_occurrence(template, "{}")
        with pytest.raises(ConnectionError):
            await b.flush()
        assert b.pending == 10
        await b.flush()
        assert b.pending == 0
        assert await count(pg, account) == 10

    async def test_shutdown_writes_what_is_queued(self, app: FastAPI, account: AccountCredentials,
                                                  pg: asyncpg.Pool):
        b = EventBatcher(app.state.runtime.pool, min_interval=1.0)
        b.start()
        template = template_for(account)
        for _ in range(500):
            b.add_occurrence(template, "{}")
        await b.shutdown()
        assert b.pending == 0
        assert await count(pg, account) == 500
