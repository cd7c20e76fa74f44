"""The event trail: newest first, filters, cursors, aggregate, get, append-only, isolation."""

from __future__ import annotations

import asyncpg
import pytest
from authpi_admin import AuthPIAdmin
from authpi_admin.errors import NotFoundError, ValidationError
from fastapi import FastAPI

from app.events.service import record
from tests.conftest import AccountCredentials


async def emit(app: FastAPI, account_id: str, n: int, type: str = "user.created",
               issuer_id: str | None = None) -> list[str]:
    ids = []
    async with app.state.db.unit_of_work() as session:
        for i in range(n):
            event = await record(session, type=type, account_id=account_id, issuer_id=issuer_id,
                                 user_id=f"usr_{i}", subject={"type": "user", "id": f"usr_{i}"},
                                 auth={"type": "system"})
            ids.append(event.id)
    return ids


class TestListEvents:
    async def test_newest_first_with_cursor_pages(self, app: FastAPI, admin: AuthPIAdmin,
                                                  account: AccountCredentials):
        ids = await emit(app, account.account_id, 5)
        first = await admin.events.list(limit=3, event_types="user.created")
        assert [e.id for e in first.data] == ids[::-1][:3]
        assert first.has_more is True
        second = await admin.events.list(limit=3, event_types="user.created", cursor=first.next_cursor)
        assert [e.id for e in second.data] == ids[::-1][3:]
        assert second.has_more is False
        assert second.next_cursor is None

    async def test_filters_by_issuer_and_type(self, app: FastAPI, admin: AuthPIAdmin,
                                              account: AccountCredentials):
        await emit(app, account.account_id, 2, issuer_id="i_a")
        await emit(app, account.account_id, 1, type="client.created", issuer_id="i_b")
        only_b = await admin.events.list(issuer_id="i_b")
        assert [e.type for e in only_b.data] == ["client.created"]
        users = await admin.events.list(event_types="user.created,client.created", issuer_id="i_a")
        assert len(users.data) == 2

    async def test_time_window(self, app: FastAPI, admin: AuthPIAdmin, account: AccountCredentials):
        await emit(app, account.account_id, 2)
        everything = await admin.events.list(event_types="user.created")
        newest = everything.data[0].timestamp
        assert (await admin.events.list(event_types="user.created", after=float(newest))).data == []
        assert len((await admin.events.list(event_types="user.created", before=float(newest) + 1)).data) == 2

    async def test_unknown_event_type_is_422(self, admin: AuthPIAdmin):
        with pytest.raises(ValidationError):
            await admin.events.list(event_types="user.*")

    async def test_bad_cursor_is_422(self, admin: AuthPIAdmin):
        with pytest.raises(ValidationError):
            await admin.events.list(cursor="%%%")

    async def test_only_the_callers_account(self, app: FastAPI, admin: AuthPIAdmin,
                                            other_account: AccountCredentials):
        await emit(app, other_account.account_id, 3)
        page = await admin.events.list(event_types="user.created")
        assert page.data == []


class TestGetEvent:
    async def test_returns_event_shape(self, app: FastAPI, admin: AuthPIAdmin, account: AccountCredentials):
        [event_id] = await emit(app, account.account_id, 1)
        event = await admin.events.get(event_id)
        assert event.id == event_id
        assert event.type == "user.created"
        assert event.spec
        assert event.source

    async def test_another_accounts_event_is_404(self, app: FastAPI, admin: AuthPIAdmin,
                                                 other_account: AccountCredentials):
        [event_id] = await emit(app, other_account.account_id, 1)
        with pytest.raises(NotFoundError):
            await admin.events.get(event_id)


class TestAggregateEvents:
    async def test_counts_by_type(self, app: FastAPI, admin: AuthPIAdmin, account: AccountCredentials):
        await emit(app, account.account_id, 3)
        await emit(app, account.account_id, 2, type="client.created")
        result = await admin.events.aggregate(group_by="type")
        counts = {b["type"]: b["count"] for b in result.buckets}
        assert counts["user.created"] == 3
        assert counts["client.created"] == 2

    async def test_counts_by_interval_and_unique(self, app: FastAPI, admin: AuthPIAdmin,
                                                 account: AccountCredentials):
        await emit(app, account.account_id, 3)
        result = await admin.events.aggregate(interval="day", event_types="user.created",
                                              count_unique="user_id")
        assert result.interval == "day"
        assert sum(b["count"] for b in result.buckets) == 3


class TestTrailIsAppendOnly:
    async def test_update_and_delete_are_rejected_by_the_database(self, app: FastAPI, pg: asyncpg.Pool,
                                                                  account: AccountCredentials):
        [event_id] = await emit(app, account.account_id, 1)
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await pg.execute("UPDATE events SET type = 'x' WHERE id = $1", event_id)
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await pg.execute("DELETE FROM events WHERE id = $1", event_id)
        assert await pg.fetchval("SELECT type FROM events WHERE id = $1", event_id) == "user.created"

    async def test_secrets_never_reach_the_trail(self, app: FastAPI, pg: asyncpg.Pool,
                                                 account: AccountCredentials):
        async with app.state.db.unit_of_work() as session:
            event = await record(session, type="user.updated", account_id=account.account_id,
                                 subject={"type": "user", "id": "usr_x"},
                                 data={"password": "hunter2", "secret_plain": "s", "name": "ok"})
        data = await pg.fetchval("SELECT data::text FROM events WHERE id = $1", event.id)
        assert "hunter2" not in data
        assert '"name": "ok"' in data
