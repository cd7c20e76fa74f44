"""Delivery through the in-process relay to a real receiver, verified with standardwebhooks."""

from __future__ import annotations

import asyncio
import json

import asyncpg
from authpi_admin import AuthPIAdmin
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
