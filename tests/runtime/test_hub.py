"""The process's LISTEN/NOTIFY hub: typed messages by topic, local dispatch of this process's own
changes, reconnection with a resync on both edges."""

from __future__ import annotations

import asyncio

import asyncpg
from fastapi import FastAPI

from app.core.db import Database
from app.runtime.hub import Hub, Message
from app.runtime.invalidation import TOPIC, publish, subscribe


async def until(predicate, seconds: float = 10.0) -> None:  # noqa: ANN001
    for _ in range(int(seconds / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


class TestHub:
    async def test_a_change_from_another_process_arrives_typed(self, app: FastAPI, database_url: str):
        hub: Hub = app.state.runtime.hub
        got: list[Message] = []
        hub.subscribe(TOPIC, got.append)
        other = Database(database_url, pool_size=1)  # no hub: like another replica, or the CLI
        try:
            async with other.unit_of_work() as session:
                await publish(session, "client", "c_01someclientid")
                assert got == []  # nothing before the commit
            await until(lambda: bool(got))
        finally:
            hub.unsubscribe(got.append)
            await other.dispose()
        assert (got[0].topic, got[0].kind, got[0].ident) == (TOPIC, "client", "c_01someclientid")

    async def test_own_changes_apply_here_at_once_and_rolled_back_ones_never_leave(
            self, app: FastAPI, pg: asyncpg.Pool):
        seen: list[str] = []
        hub: Hub = app.state.runtime.hub
        handle = subscribe(hub, {"org": seen.append}, lambda: None)
        try:
            async with app.state.db.unit_of_work() as session:
                await publish(session, "org", "org_local")
                assert seen == ["org_local"]  # applied to this process's caches before the commit
            assert seen == ["org_local", "org_local"]  # and again right after it
            listener = await pg.acquire()
            notes: list[str] = []
            await listener.add_listener(TOPIC, lambda *a: notes.append(a[3]))
            try:
                try:
                    async with app.state.db.unit_of_work() as session:
                        await publish(session, "org", "org_rolled_back")
                        raise RuntimeError("roll back")
                except RuntimeError:
                    pass
                await listener.execute("SELECT 1")
                await asyncio.sleep(0.1)
                assert "org:org_rolled_back" not in notes
            finally:
                await pg.release(listener)
        finally:
            hub.unsubscribe(handle)

    async def test_a_lost_listener_resyncs_on_loss_and_on_return(self, app: FastAPI, pg: asyncpg.Pool):
        hub: Hub = app.state.runtime.hub
        resyncs: list[bool] = []

        def ignore(_message: Message) -> None:
            pass

        hub.subscribe(TOPIC, ignore, lambda: resyncs.append(hub.live()))
        await until(hub.live)
        pid = await hub._conn.fetchval("SELECT pg_backend_pid()")
        await pg.execute("SELECT pg_terminate_backend($1)", pid)
        await until(lambda: len(resyncs) >= 2)
        assert resyncs[:2] == [False, True]  # lost, then back
        assert hub.live()
        assert hub.contact_age() < 5
        hub.unsubscribe(ignore)
