"""The request's unit of work as a FastAPI dependency: one session, one transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession


async def db_session(request: Request) -> AsyncIterator[AsyncSession]:
    """Commits when the endpoint returns, rolls back when it raises (services never commit)."""
    async with request.app.state.db.unit_of_work() as session:
        yield session
