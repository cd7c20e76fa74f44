"""Alembic environment: async engine, URL from the caller or from AUTHPI_* settings."""

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.core.db import to_sqlalchemy_url
from app.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.attributes.get("database_url")
    if url:
        return to_sqlalchemy_url(url)
    from app.config import get_settings
    from app.core.db import start_embedded_postgres

    settings = get_settings()
    return to_sqlalchemy_url(settings.database_url or start_embedded_postgres(settings.data_dir))


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        # Replicas starting together migrate one at a time.
        connection.execute(text("SELECT pg_advisory_xact_lock(727274)"))
        context.run_migrations()


async def _run_async() -> None:
    engine = create_async_engine(_url(), hide_parameters=True)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
