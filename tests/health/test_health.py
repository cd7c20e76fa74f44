from __future__ import annotations

import asyncio

import asyncpg
import httpx

from app.core.db import to_asyncpg_dsn


class TestProbes:
    async def test_healthz(self, client: httpx.AsyncClient):
        r = await client.get("/healthz")
        assert r.status_code == 200

    async def test_readyz_reports_schema_at_head(self, client: httpx.AsyncClient):
        r = await client.get("/readyz")
        assert r.status_code == 200
        assert r.json()["database"] == "ok"


class TestReadinessDuringAnUpgrade:
    """A database migrated by a newer release keeps the old replicas ready (a rolling upgrade);
    a database behind this code is not ready."""

    async def test_ahead_is_ready_and_behind_is_not(self):
        from app.main import create_app
        from tests.conftest import make_settings
        from tests.fixtures.database import create_test_database, drop_test_database, migrate

        base, url = await create_test_database()
        try:
            await asyncio.to_thread(migrate, url)
            conn = await asyncpg.connect(to_asyncpg_dsn(url))
            app = create_app(make_settings(), database_url=url)
            try:
                async with app.router.lifespan_context(app), httpx.AsyncClient(
                        transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
                    assert (await http.get("/readyz")).status_code == 200
                    heads = [r[0] for r in await conn.fetch("SELECT version_num FROM alembic_version")]
                    # A newer release's migration on top of one of the heads.
                    await conn.execute("UPDATE alembic_version SET version_num = 'f_future_ops' "
                                       "WHERE version_num = $1", heads[0])
                    assert (await http.get("/readyz")).status_code == 200
                    # Behind: one head back at the base revision.
                    await conn.execute("UPDATE alembic_version SET version_num = '0001' "
                                       "WHERE version_num = 'f_future_ops'")
                    behind = await http.get("/readyz")
                    assert behind.status_code == 503
                    assert behind.json()["database"] == "schema not at head"
            finally:
                await conn.close()
        finally:
            await drop_test_database(base, url)
