"""The request's unit of work as a FastAPI dependency: one session, one transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession


async def db_session(request: Request) -> AsyncIterator[AsyncSession]:
    """Commits when the endpoint returns, rolls back when it raises (services never commit).

    Always declare it as `Depends(db_session, scope="function")`: FastAPI's default for a yield
    dependency ("request") runs the code after `yield` only once the response has been sent, so a
    client could be told "created" before the commit, and a failed commit would lose an acknowledged
    write. tests/core/test_unit_of_work.py checks every route.
    """
    async with request.app.state.db.unit_of_work() as session:
        yield session
    # Committed. Hooks that must finish before the client hears back (e.g. a key revocation waits
    # until its cross-process invalidation has been dispatched) run here.
    for hook in session.info.pop("after_commit", []):
        await hook()
