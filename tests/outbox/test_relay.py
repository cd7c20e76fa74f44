"""The outbox: written in the causing transaction, claimed with SKIP LOCKED, retried with backoff,
payload encrypted at rest and erased once sent. Real PostgreSQL; a test kind records deliveries."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import asyncpg
import pytest
from cryptography.exceptions import InvalidTag
from fastapi import FastAPI

from app.core.ids import now_ms
from app.models.outbox import OutboxMessage
from app.outbox.registry import DeliveryContext, Kind, PermanentFailure, register_kind
from app.outbox.relay import OutboxRelay
from app.outbox.service import enqueue, open_payload
from tests.conftest import AccountCredentials, make_settings

DELIVERED: Counter[str] = Counter()
FAILURES: dict[str, int] = {}
SENT_HOOKS: list[str] = []


async def _deliver(ctx: DeliveryContext, row: OutboxMessage, payload: dict[str, Any]) -> None:
    await asyncio.sleep(0.01)  # in flight while other relays look for work
    mode = payload.get("mode")
    if mode == "permanent":
        raise PermanentFailure("recipient refused")
    if FAILURES.get(row.id, 0) > 0:
        FAILURES[row.id] -= 1
        raise ConnectionError("receiver down")
    DELIVERED[row.id] += 1


async def _on_sent(session: Any, row: OutboxMessage, payload: dict[str, Any]) -> None:
    SENT_HOOKS.append(row.id)


register_kind(Kind(name="test.collect", deliver=_deliver, on_sent=_on_sent))
register_kind(Kind(name="test.budget2", deliver=_deliver, max_attempts=2))


async def _enqueue(app: FastAPI, account: AccountCredentials, payload: dict[str, Any]) -> str:
    async with app.state.db.unit_of_work() as session:
        row = await enqueue(session, server_key=app.state.secret_key, public_url="https://id.example.com",
                            kind="test.collect", account_id=account.account_id, payload=payload)
        return row.id


class _Rollback(Exception):  # noqa: N818
    pass


async def _then_roll_back(app: FastAPI, body: Any) -> None:
    try:
        async with app.state.db.unit_of_work() as session:
            await body(session)
            raise _Rollback
    except _Rollback:
        pass


async def _row(pg: asyncpg.Pool, row_id: str) -> asyncpg.Record:
    return await pg.fetchrow("SELECT * FROM outbox WHERE id = $1", row_id)


async def _until(pg: asyncpg.Pool, row_id: str, status: str, timeout: float = 15.0) -> asyncpg.Record:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        row = await _row(pg, row_id)
        if row["status"] == status:
            return row
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{row_id} is {row['status']}, not {status}")
        await asyncio.sleep(0.05)


class TestEnqueue:
    async def test_sent_once_with_its_message_id_and_payload_erased(self, app, account, pg):
        row_id = await _enqueue(app, account, {"to": "a@example.com", "link": "https://x/tok_SECRET"})
        stored = await _row(pg, row_id)
        assert stored["message_id"] == f"<{row_id}@id.example.com>"
        assert "tok_SECRET" not in (stored["payload_encrypted"] or "")
        row = await _until(pg, row_id, "sent")
        assert DELIVERED[row_id] == 1
        assert row["attempts"] == 1
        assert row["sent_at"] is not None
        assert row["payload_encrypted"] is None
        assert row_id in SENT_HOOKS

    async def test_a_rolled_back_change_sends_nothing(self, app, account, pg):
        before = await pg.fetchval("SELECT count(*) FROM outbox WHERE account_id = $1", account.account_id)

        async def change(session: Any) -> None:
            await enqueue(session, server_key=app.state.secret_key, public_url="http://testserver",
                          kind="test.collect", account_id=account.account_id, payload={})

        await _then_roll_back(app, change)
        assert await pg.fetchval("SELECT count(*) FROM outbox WHERE account_id = $1",
                                 account.account_id) == before

    async def test_an_unknown_kind_is_refused(self, app, account):
        with pytest.raises(ValueError, match="unknown outbox kind"):
            async with app.state.db.unit_of_work() as session:
                await enqueue(session, server_key=app.state.secret_key, public_url="http://testserver",
                              kind="nope", account_id=account.account_id, payload={})

    async def test_payload_is_bound_to_its_row(self, app, account):
        async def change(session: Any) -> None:
            a = await enqueue(session, server_key=app.state.secret_key, public_url="http://t",
                              kind="test.collect", account_id=account.account_id, payload={"n": 1},
                              delay_ms=3_600_000)
            b = await enqueue(session, server_key=app.state.secret_key, public_url="http://t",
                              kind="test.collect", account_id=account.account_id, payload={"n": 2},
                              delay_ms=3_600_000)
            assert open_payload(app.state.secret_key, a) == {"n": 1}
            b.payload_encrypted = a.payload_encrypted
            with pytest.raises(InvalidTag):
                open_payload(app.state.secret_key, b)

        await _then_roll_back(app, change)


class TestRetries:
    async def test_a_failed_attempt_is_retried_with_backoff_and_the_same_message_id(self, app, account, pg):
        async with app.state.db.unit_of_work() as session:
            row = await enqueue(session, server_key=app.state.secret_key, public_url="http://testserver",
                                kind="test.collect", account_id=account.account_id, payload={},
                                delay_ms=3_600_000)
            row_id, message_id = row.id, row.message_id
        FAILURES[row_id] = 1
        await pg.execute("UPDATE outbox SET next_attempt_at = $2 WHERE id = $1", row_id, now_ms())
        await pg.execute("SELECT pg_notify('authpi_outbox', '')")
        deadline = asyncio.get_running_loop().time() + 15
        while (first := await _row(pg, row_id))["attempts"] < 1:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.05)
        assert first["status"] == "pending"
        assert "receiver down" in first["last_error"]
        # The settings' first delay (5 s by default, +/- 20%): not due again yet.
        assert first["next_attempt_at"] - now_ms() > 2_000
        assert first["payload_encrypted"] is not None
        assert DELIVERED[row_id] == 0
        # Time passes (no sleeping): the retry goes out with the same Message-ID.
        await pg.execute("UPDATE outbox SET next_attempt_at = $2 WHERE id = $1", row_id, now_ms())
        await pg.execute("SELECT pg_notify('authpi_outbox', '')")
        done = await _until(pg, row_id, "sent")
        assert done["attempts"] == 2
        assert done["message_id"] == message_id
        assert DELIVERED[row_id] == 1

    async def test_a_permanent_failure_ends_it_and_erases_the_payload(self, app, account, pg):
        row_id = await _enqueue(app, account, {"mode": "permanent"})
        row = await _until(pg, row_id, "failed")
        assert row["attempts"] == 1
        assert row["payload_encrypted"] is None
        assert row["last_error"] == "recipient refused"
        assert DELIVERED[row_id] == 0

    async def test_the_budget_ends_retries(self, app, account, pg):
        relay = OutboxRelay(app.state.db, make_settings(), app.state.secret_key, hub=None)
        async with app.state.db.unit_of_work() as session:
            row = await enqueue(session, server_key=app.state.secret_key, public_url="http://testserver",
                                kind="test.budget2", account_id=account.account_id, payload={},
                                delay_ms=3_600_000)
            row_id = row.id
        FAILURES[row_id] = 5
        for attempt in (1, 2):
            await pg.execute("UPDATE outbox SET next_attempt_at = 0 WHERE id = $1 AND status = 'pending'",
                             row_id)
            while (await _row(pg, row_id))["attempts"] < attempt:
                await relay.run_once()
        row = await _until(pg, row_id, "failed")
        assert row["attempts"] == 2
        assert row["payload_encrypted"] is None
        assert "receiver down" in row["last_error"]


class TestConcurrentRelays:
    async def test_each_message_is_delivered_once_across_relays(self, app, account, pg):
        settings = make_settings()
        relays = [OutboxRelay(app.state.db, settings, app.state.secret_key, hub=None) for _ in range(3)]
        async with app.state.db.unit_of_work() as session:
            ids = [(await enqueue(session, server_key=app.state.secret_key, public_url="http://t",
                                  kind="test.collect", account_id=account.account_id, payload={"i": i})).id
                   for i in range(30)]
        for _ in range(10):
            await asyncio.gather(*(r.run_once() for r in relays))
        for row_id in ids:
            await _until(pg, row_id, "sent")
        assert all(DELIVERED[i] == 1 for i in ids)
