"""The one way a service fetches a row by id: scoped by the caller's tenant, 404 when absent."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import NotFound


async def one_or_404(session: AsyncSession, stmt: Select[Any], what: str, *,
                     for_update: bool = False) -> Any:
    """The row `stmt` selects (locked FOR UPDATE when asked); NotFound(what) when there is none."""
    if for_update:
        stmt = stmt.with_for_update()
    row = await session.scalar(stmt)
    if row is None:
        raise NotFound(what)
    return row
