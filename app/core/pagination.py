"""Keyset pagination over prefixed, time-sortable ids; cursors are opaque to clients."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from fastapi import Query
from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import ValidationFailed


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except Exception as exc:  # noqa: BLE001 - any garbage is the client's error
        raise ValidationFailed("The cursor is not valid", field="cursor") from exc
    if not raw or len(raw) > 64 or "_" not in raw:
        raise ValidationFailed("The cursor is not valid", field="cursor")
    return raw


@dataclass(frozen=True)
class PageParams:
    limit: int
    after_id: str | None


def page_params(
    limit: int = Query(50, ge=1, le=100, description="Page size, 1-100"),
    cursor: str | None = Query(None, max_length=128, description="Opaque cursor from next_cursor"),
) -> PageParams:
    return PageParams(limit=limit, after_id=decode_cursor(cursor) if cursor else None)


async def paginate(session: AsyncSession, stmt: Select[Any], id_column: Any, params: PageParams
                   ) -> tuple[list[Any], bool, str | None]:
    """Newest first (ids sort by creation time). Returns (rows, has_more, next_cursor)."""
    if params.after_id is not None:
        stmt = stmt.where(id_column < params.after_id)
    stmt = stmt.order_by(id_column.desc()).limit(params.limit + 1)
    rows = list((await session.scalars(stmt)).all())
    has_more = len(rows) > params.limit
    rows = rows[: params.limit]
    next_cursor = encode_cursor(rows[-1].id) if has_more and rows else None
    return rows, has_more, next_cursor
