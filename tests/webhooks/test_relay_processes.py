"""The relay as separate `authpi worker` processes on their own database: SIGKILL mid-burst loses no
delivery, and two relays deliver each (event, endpoint) pair once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.account.service import create_account
from app.core.auth import Principal
from app.core.db import Database
from app.events.service import record
from app.webhooks import service
from app.webhooks.schemas import WebhookCreate
from tests.conftest import TEST_SECRET_KEY
from tests.fixtures.database import migrated_database
from tests.webhooks.receiver import Receiver

AUTHPI = str(Path(sys.executable).parent / "authpi")


# A database of its own: no in-process relay competes with the worker processes here.
relay_database_url = pytest.fixture(scope="module")(migrated_database)


@pytest.fixture
async def relay_db(relay_database_url: str) -> AsyncIterator[Database]:
    db = Database(relay_database_url, pool_size=8)
    yield db
    await db.dispose()


def start_worker(url: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "AUTHPI_DATABASE_URL": url, "AUTHPI_SECRET_KEY": TEST_SECRET_KEY,
           "AUTHPI_ENV": "test", "AUTHPI_WEBHOOKS_ALLOW_PRIVATE": "true",
           "AUTHPI_WEBHOOKS_POLL_INTERVAL_SECONDS": "0.5"}
    return subprocess.Popen([AUTHPI, "worker"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def setup_tenant(db: Database, receiver: Receiver, paths: list[str]) -> str:
    async with db.unit_of_work() as session:
        account, key, _ = await create_account(session, "relay-test")
        principal = Principal(type="api_key", account_id=account.id, account_level=True, key_id=key.id)
        for p in paths:
            _, secret = await service.create_webhook(
                session, account.id,
                WebhookCreate(name=p, url=receiver.endpoint(p), auth={"type": "signature"},
                              events=["user.updated"]),
                principal, server_key=TEST_SECRET_KEY, allow_private=True)
            receiver.secrets[p] = [secret]
    return account.id


async def emit_burst(db: Database, account_id: str, ids: list[str], count: int, subjects: int,
                     start: int = 0, concurrency: int = 6) -> None:
    """`count` events, each in its own transaction, a few transactions at a time."""
    queue = iter(range(start, start + count))

    async def emitter() -> None:
        for i in queue:
            async with db.unit_of_work() as session:
                event = await record(session, type="user.updated", account_id=account_id,
                                     subject={"type": "user", "id": f"usr_{i % subjects}"},
                                     data={"n": i}, auth={"type": "system", "actor": "burst"})
            ids.append(event.id)

    await asyncio.gather(*(emitter() for _ in range(concurrency)))


async def wait_pairs(receiver: Receiver, expected: set[tuple[str, str]], timeout: float
                     ) -> set[tuple[str, str]]:
    deadline = time.time() + timeout
    while True:
        with receiver.lock:
            got = {(r.path, r.webhook_id) for r in receiver.received if r.status < 300}
        if expected <= got or time.time() > deadline:
            return got
        await asyncio.sleep(0.1)


def received_for(receiver: Receiver, paths: list[str]) -> list:
    with receiver.lock:
        return [r for r in receiver.received if r.path in paths]


class TestWorkerCrash:
    async def test_sigkill_in_the_middle_of_a_burst_loses_no_delivery(
            self, relay_db: Database, receiver: Receiver) -> None:
        tag = time.time_ns()
        paths = [f"/crash/{tag}/a", f"/crash/{tag}/b"]
        account_id = await setup_tenant(relay_db, receiver, paths)
        ids: list[str] = []
        worker = start_worker(relay_db.url)
        try:
            await emit_burst(relay_db, account_id, ids, 200, subjects=50)
            # Let the worker get going, then keep the burst coming and kill it mid-way.
            deadline = time.time() + 30
            while len(received_for(receiver, paths)) < 100 and time.time() < deadline:
                await asyncio.sleep(0.05)
            burst = asyncio.create_task(emit_burst(relay_db, account_id, ids, 800, subjects=50, start=200))
            while len(ids) < 500:
                await asyncio.sleep(0.01)
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait()
            delivered_at_kill = len(received_for(receiver, paths))
            await burst
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        async with relay_db.sessionmaker() as session:
            from sqlalchemy import text

            pending = (await session.execute(text(
                "SELECT count(*) FROM webhook_deliveries WHERE account_id = :a AND status = 'pending'"),
                {"a": account_id})).scalar()
        assert 0 < delivered_at_kill < 2000
        assert pending > 0, "killed with work outstanding"

        restarted = start_worker(relay_db.url)
        try:
            expected = {(p, e) for p in paths for e in ids}
            got = await wait_pairs(receiver, expected, timeout=90)
        finally:
            stop_worker(restarted)
        assert len(ids) == 1000
        assert expected <= got, f"{len(expected - got)} pairs never arrived"
        items = received_for(receiver, paths)
        assert all(r.verified_with for r in items)
        bodies: dict[tuple[str, str], set[bytes]] = defaultdict(set)
        for r in items:
            bodies[(r.path, r.webhook_id)].add(r.body)
        # A repeat is the same message: same webhook-id, same body.
        assert all(len(b) == 1 for b in bodies.values())
        assert {r.event["id"] for r in items} == set(ids)


class TestTwoRelays:
    async def test_two_workers_deliver_each_pair_once_in_order_per_subject(
            self, relay_db: Database, receiver: Receiver) -> None:
        tag = time.time_ns()
        paths = [f"/two/{tag}/a", f"/two/{tag}/b"]
        account_id = await setup_tenant(relay_db, receiver, paths)
        workers = [start_worker(relay_db.url), start_worker(relay_db.url)]
        ids: list[str] = []
        try:
            await emit_burst(relay_db, account_id, ids, 400, subjects=40)
            expected = {(p, e) for p in paths for e in ids}
            got = await wait_pairs(receiver, expected, timeout=60)
            await asyncio.sleep(0.5)
        finally:
            for w in workers:
                stop_worker(w)
        assert expected <= got
        items = received_for(receiver, paths)
        assert len(items) == len(expected), "each pair exactly once"
        assert all(r.verified_with for r in items)
        by_subject: dict[tuple[str, str], list[str]] = defaultdict(list)
        for r in sorted(items, key=lambda r: r.at):
            by_subject[(r.path, r.event["subject"]["id"])].append(r.webhook_id)
        for seq in by_subject.values():
            assert seq == sorted(seq), "one subject's events arrive in event order"
