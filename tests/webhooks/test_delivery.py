"""Delivery through the in-process relay to a real receiver, verified with standardwebhooks."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import asyncpg
import pytest
from authpi_admin import AuthPIAdmin
from authpi_admin.errors import NotFoundError, ValidationError
from fastapi import FastAPI

from tests.conftest import AccountCredentials
from tests.webhooks.conftest import create_hook, emit, eventually
from tests.webhooks.receiver import Receiver


class TestDeliver:
    async def test_subscribed_events_arrive_signed_in_order_per_subject(
            self, app: FastAPI, admin: AuthPIAdmin, account: AccountCredentials, receiver: Receiver,
            path: str, client) -> None:
        await create_hook(admin, receiver, path, ["user.created", "user.updated", "user.deleted"])
        expected: dict[str, list[str]] = {}
        for round_ in range(5):
            for subject in ("usr_a", "usr_b", "usr_c"):
                kind = "user.created" if round_ == 0 else "user.updated"
                event_id = await emit(app, account.account_id, kind, f"{subject}{account.account_id}")
                expected.setdefault(subject, []).append(event_id)
        # Not subscribed, and trail-only: never delivered.
        await emit(app, account.account_id, "organization.created", "org_x", subject_type="organization")
        await emit(app, account.account_id, "api-key.verified", account.key_id, subject_type="api_key")
        await receiver.wait_for(path, 15)
        await asyncio.sleep(0.3)
        got = receiver.at(path)
        assert len(got) == 15
        assert all(r.verified_with for r in got), "every delivery verifies with standardwebhooks"
        assert {r.event["type"] for r in got} <= {"user.created", "user.updated"}
        for subject, ids in expected.items():
            seen = [r.webhook_id for r in got if r.event["subject"]["id"] == f"{subject}{account.account_id}"]
            assert seen == ids
        # The body is exactly the event as GET {A}/events/{id} returns it; webhook-id is the event id.
        one = got[0]
        resp = await client.get(f"/v1/accounts/{account.account_id}/events/{one.webhook_id}",
                                auth=account.basic)
        assert json.loads(one.body) == resp.json()["data"]
        assert one.headers["webhook-signature"].startswith("v1,")

    async def test_subject_filters_limit_what_is_delivered(
            self, app: FastAPI, admin: AuthPIAdmin, account: AccountCredentials, receiver: Receiver,
            path: str) -> None:
        # Filters name real ids of the account (a filter on an unknown id is refused).
        i_keep = (await admin.issuers.create({"name": "keep"})).id
        org_keep = (await admin.issuer(i_keep).organizations.create({"name": "keep"})).id
        usr_k = (await admin.issuer(i_keep).users.create({"username_type": "username",
                                                          "username": "keep"})).id
        await create_hook(admin, receiver, path, ["user.updated"],
                          subjects=[{"issuer_id": i_keep}, {"org_id": org_keep, "user_id": usr_k}])
        keep1 = await emit(app, account.account_id, "user.updated", "usr_1", issuer_id=i_keep)
        await emit(app, account.account_id, "user.updated", "usr_2", issuer_id="i_other")
        await emit(app, account.account_id, "user.updated", "usr_3", org_id=org_keep)  # user differs
        keep2 = await emit(app, account.account_id, "user.updated", usr_k, org_id=org_keep,
                           user_id=usr_k)
        await receiver.wait_for(path, 2)
        await asyncio.sleep(0.3)
        assert sorted(r.webhook_id for r in receiver.at(path)) == sorted([keep1, keep2])

    async def test_only_the_endpoints_own_account_events(
            self, app: FastAPI, admin: AuthPIAdmin, account: AccountCredentials,
            other_account: AccountCredentials, receiver: Receiver, path: str, pg: asyncpg.Pool) -> None:
        await create_hook(admin, receiver, path, ["user.created"])
        await emit(app, other_account.account_id, "user.created", "usr_other")
        mine = await emit(app, account.account_id, "user.created", "usr_mine")
        await receiver.wait_for(path, 1)
        await asyncio.sleep(0.2)
        assert [r.webhook_id for r in receiver.at(path)] == [mine]
        assert await pg.fetchval("SELECT count(*) FROM webhook_deliveries WHERE account_id = $1",
                                 other_account.account_id) == 0

    async def test_paused_endpoint_holds_deliveries_until_resumed(
            self, app: FastAPI, admin: AuthPIAdmin, account: AccountCredentials, receiver: Receiver,
            path: str) -> None:
        hook = await create_hook(admin, receiver, path, ["user.created"], status="paused")
        event_id = await emit(app, account.account_id, "user.created", "usr_held")
        await asyncio.sleep(0.5)
        assert receiver.at(path) == []
        await admin.webhooks.update(hook.id, {"status": "active"})
        got = await receiver.wait_for(path, 1)
        assert [r.webhook_id for r in got] == [event_id]

    async def test_refuses_a_private_target_at_delivery_time(
            self, app: FastAPI, admin: AuthPIAdmin, account: AccountCredentials, pg: asyncpg.Pool,
            receiver: Receiver, path: str) -> None:
        """A URL accepted earlier (or whose DNS changed) is checked again when connecting."""
        from sqlalchemy import select

        from app.models.event import Event
        from app.models.webhook import Webhook
        from app.webhooks.delivery import Sender, attempt

        hook = await create_hook(admin, receiver, path, ["user.created"], status="paused")
        event_id = await emit(app, account.account_id, "user.created", "usr_priv")
        strict = Sender(timeout_seconds=2, allow_private=False)
        try:
            async with app.state.db.unit_of_work() as session:
                webhook = await session.scalar(select(Webhook).where(Webhook.id == hook.id))
                event = await session.scalar(select(Event).where(Event.id == event_id))
                result = await attempt(strict, webhook, event, app.state.secret_key)
                # A name (not a literal address) resolving to a non-public address is refused when
                # connecting: the checked address is the one connected to.
                by_name = await strict.post(f"http://{socket.gethostname()}:{receiver.port}{path}", {}, b"{}")
        finally:
            await strict.aclose()
        assert not result.ok
        assert result.error.startswith("refused")
        assert not by_name.ok
        assert by_name.error.startswith("refused: ")
        assert "non-public" in by_name.error
        assert receiver.at(path) == []


class TestRetries:
    async def test_a_recovering_receiver_gets_the_retries_on_schedule(
            self, app: FastAPI, admin: AuthPIAdmin, account: AccountCredentials, receiver: Receiver,
            path: str, pg: asyncpg.Pool) -> None:
        receiver.scripts[path] = [500, 500, 500]
        hook = await create_hook(admin, receiver, path, ["user.created"], retry={
            "max_attempts": 5, "initial_delay_ms": 200, "multiplier": 2, "jitter": 0})
        event_id = await emit(app, account.account_id, "user.created", "usr_retry")
        await receiver.wait_for(path, 1)
        got = receiver.at(path)
        assert [r.status for r in got] == [500, 500, 500, 200]
        assert {r.webhook_id for r in got} == {event_id}  # the same webhook-id on every retry
        gaps = [b.at - a.at for a, b in zip(got, got[1:], strict=False)]
        for gap, expected in zip(gaps, [0.2, 0.4, 0.8], strict=True):
            assert expected - 0.02 <= gap <= expected + 0.4, gaps

        async def settled() -> Any:
            [delivery] = (await admin.webhook(hook.id).deliveries.list()).data
            return delivery if delivery.status == "succeeded" else None

        delivery = await eventually(settled)
        assert delivery is not None
        assert delivery.attempt_count == 4
        assert delivery.last_response_status == 200
        assert delivery.last_error is None
        attempts = await pg.fetch("SELECT * FROM webhook_delivery_attempts WHERE delivery_id = $1 "
                                  "ORDER BY attempt", delivery.id)
        assert [a["response_status"] for a in attempts] == [500, 500, 500, 200]
        assert all(a["duration_ms"] >= 0 for a in attempts)
        assert len(attempts[0]["response_body"]) == 2048  # truncated

    async def test_later_events_of_a_subject_wait_for_the_earlier_ones(
            self, app: FastAPI, admin: AuthPIAdmin, account: AccountCredentials, receiver: Receiver,
            path: str) -> None:
        receiver.scripts[path] = [500]
        await create_hook(admin, receiver, path, ["user.created", "user.updated"], retry={
            "initial_delay_ms": 300, "jitter": 0})
        first = await emit(app, account.account_id, "user.created", "usr_ord")
        second = await emit(app, account.account_id, "user.updated", "usr_ord")
        await receiver.wait_for(path, 2)
        assert [(r.webhook_id, r.status) for r in receiver.at(path)] == [
            (first, 500), (first, 200), (second, 200)]


class TestCircuitBreaker:
    async def test_a_failing_endpoint_is_paused_then_resumed_and_redelivered(
            self, app: FastAPI, admin: AuthPIAdmin, account: AccountCredentials, receiver: Receiver,
            path: str, pg: asyncpg.Pool) -> None:
        receiver.default_status[path] = 503
        hook = await create_hook(admin, receiver, path, ["user.created"],
                                 retry={"max_attempts": 2, "initial_delay_ms": 100, "jitter": 0},
                                 circuit_breaker={"failure_threshold": 4, "min_failure_window_ms": 0})
        ids = [await emit(app, account.account_id, "user.created", f"usr_cb{i}") for i in range(3)]

        async def paused() -> bool:
            return (await admin.webhooks.get(hook.id)).status == "paused"

        assert await eventually(paused)
        got = await admin.webhooks.get(hook.id)
        assert got.status_by == "circuit-breaker"
        assert "circuit breaker" in got.status_reason
        trail = await pg.fetch("SELECT auth FROM events WHERE account_id = $1 AND type = 'webhook.paused'",
                               account.account_id)
        assert len(trail) == 1
        assert "circuit-breaker" in trail[0]["auth"]
        await asyncio.sleep(0.4)
        attempts_while_paused = len(receiver.at(path))
        await asyncio.sleep(0.4)
        assert len(receiver.at(path)) == attempts_while_paused  # nothing sent while open

        receiver.default_status[path] = 200
        failed = await admin.webhook(hook.id).deliveries.list(status="failed")
        assert failed.data, "two attempts spent: failed"
        # Redeliver one now: a synchronous attempt.
        one = await admin.webhook(hook.id).deliveries.redeliver(failed.data[-1].id)
        assert one.success is True
        assert one.status == "succeeded"
        # Resume: held deliveries go out; bulk redelivery requeues the remaining failed ones.
        await admin.webhooks.update(hook.id, {"status": "active"})
        result = await admin.webhook(hook.id).redeliver.create({"after": 0})
        assert result["requeued"] >= 0
        assert result["webhook_id"] == hook.id

        async def all_succeeded() -> bool:
            page = await admin.webhook(hook.id).deliveries.list()
            return all(d.status == "succeeded" for d in page.data) and len(page.data) == 3

        assert await eventually(all_succeeded)
        ok = {r.webhook_id for r in receiver.at(path) if r.status == 200}
        assert ok == set(ids)
        assert len(await pg.fetch("SELECT 1 FROM events WHERE account_id = $1 AND type = 'webhook.resumed'",
                                  account.account_id)) == 1


class TestDeliveries:
    async def test_list_filters(self, app: FastAPI, admin: AuthPIAdmin, account: AccountCredentials,
                                receiver: Receiver, path: str) -> None:
        receiver.scripts[path] = [400]
        hook = await create_hook(admin, receiver, path, ["user.created", "user.deleted"],
                                 retry={"max_attempts": 1})
        # One subject: delivered in order, so the scripted 400 is the first event's.
        a = await emit(app, account.account_id, "user.created", "usr_l1")
        b = await emit(app, account.account_id, "user.deleted", "usr_l1")
        await receiver.wait_for(path, 2, ok_only=False)

        async def settled() -> bool:
            page = await admin.webhook(hook.id).deliveries.list()
            return all(d.status != "pending" for d in page.data)

        assert await eventually(settled)
        deliveries = admin.webhook(hook.id).deliveries
        everything = (await deliveries.list()).data
        assert [d.event_id for d in everything] == [b, a]
        assert [d.event_id for d in (await deliveries.list(event_type="user.deleted")).data] == [b]
        [failed] = (await deliveries.list(status="failed")).data
        assert failed.event_id == a
        assert failed.last_response_status == 400
        assert failed.last_error == "HTTP 400"
        assert failed.attempt_budget == 1
        created = everything[0].created_at
        assert (await deliveries.list(after=float(created + 10_000))).data == []
        assert len((await deliveries.list(before=float(created + 10_000))).data) == 2
        with pytest.raises(ValidationError):
            await deliveries.list(status="weird")

    async def test_redeliver_unknown_delivery_is_404(self, admin: AuthPIAdmin) -> None:
        hook = await admin.webhooks.create({"name": "n", "url": "https://example.com/h",
                                            "auth": {"type": "signature"}, "events": ["user.created"]})
        with pytest.raises(NotFoundError):
            await admin.webhook(hook.id).deliveries.redeliver("whd_01aaaaaaaaaaaaaaaaaaaaaaaa")

    async def test_bulk_redeliver_needs_a_body(self, admin: AuthPIAdmin, client, account) -> None:
        hook = await admin.webhooks.create({"name": "n", "url": "https://example.com/h",
                                            "auth": {"type": "signature"}, "events": ["user.created"]})
        url = f"/v1/accounts/{account.account_id}/webhooks/{hook.id}/redeliver"
        assert (await client.post(url, auth=account.basic)).status_code == 422
        resp = await client.post(url, json={"after": 0, "before": 1e13}, auth=account.basic)
        assert resp.status_code == 200
        assert resp.json()["data"]["requeued"] == 0


class TestFanOut:
    async def test_a_rolled_back_event_has_no_delivery(
            self, app: FastAPI, admin: AuthPIAdmin, account: AccountCredentials, receiver: Receiver,
            path: str, pg: asyncpg.Pool) -> None:
        from app.events.service import record

        await create_hook(admin, receiver, path, ["user.created"])
        async def record_then_fail() -> None:
            async with app.state.db.unit_of_work() as session:
                await record(session, type="user.created", account_id=account.account_id,
                             subject={"type": "user", "id": "usr_rb"}, auth={"type": "system"})
                assert await pg.fetchval("SELECT count(*) FROM webhook_deliveries WHERE account_id = $1",
                                         account.account_id) == 0  # not visible before commit
                raise RuntimeError("abort")

        with pytest.raises(RuntimeError):
            await record_then_fail()
        committed = await emit(app, account.account_id, "user.created", "usr_ok")
        await receiver.wait_for(path, 1)
        await asyncio.sleep(0.2)
        assert [r.webhook_id for r in receiver.at(path)] == [committed]
        assert await pg.fetchval("SELECT count(*) FROM webhook_deliveries WHERE account_id = $1",
                                 account.account_id) == 1

    async def test_an_undecryptable_secret_fails_that_delivery_only(
            self, app: FastAPI, admin: AuthPIAdmin, account: AccountCredentials, receiver: Receiver,
            path: str, pg: asyncpg.Pool) -> None:
        """A secret sealed under another server key: a recorded failure, the rest still flows."""
        from app.webhooks.delivery import seal_secret

        broken = await create_hook(admin, receiver, path + "/broken", ["user.created"],
                                   retry={"max_attempts": 1})
        await create_hook(admin, receiver, path, ["user.created"])
        await pg.execute("UPDATE webhooks SET secret_encrypted = $1 WHERE id = $2",
                         seal_secret("another-server-key-000000000000000000", broken.id, "whsec_AAAA"),
                         broken.id)
        event_id = await emit(app, account.account_id, "user.created", "usr_bad_key")
        got = await receiver.wait_for(path, 1)
        assert [r.webhook_id for r in got] == [event_id]

        async def failed() -> Any:
            page = await admin.webhook(broken.id).deliveries.list()
            return page.data and page.data[0].status == "failed" and page.data[0]

        delivery = await eventually(failed)
        assert delivery.last_error == "internal error: InvalidTag"
        assert receiver.at(path + "/broken") == []
