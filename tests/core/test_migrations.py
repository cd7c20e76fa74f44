"""The migrations are the only source of the schema: after `upgrade heads` the database matches the
models exactly (what `alembic check` asserts), and every head is applied."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from app.core.db import to_sqlalchemy_url
from app.core.migrations import script_heads
from app.models import Base


class TestSchema:
    async def test_no_drift_between_models_and_migrations(self, database_url: str):
        engine = create_async_engine(to_sqlalchemy_url(database_url))
        try:
            async with engine.connect() as conn:
                diff = await conn.run_sync(
                    lambda sync: compare_metadata(
                        MigrationContext.configure(sync, opts={"compare_type": True}), Base.metadata))
        finally:
            await engine.dispose()
        assert diff == [], f"models and migrations differ: {diff}"

    async def test_database_is_at_every_head(self, pg):
        applied = {r["version_num"] for r in await pg.fetch("SELECT version_num FROM alembic_version")}
        assert applied == script_heads()
