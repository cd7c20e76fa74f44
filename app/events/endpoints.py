"""The event trail: list (newest first), aggregate, get (SDK-CONTRACT §2.9)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import envelopes
from app.core.auth import Principal, scoped
from app.core.errors import ValidationFailed
from app.core.pagination import PageParams, page_params, paginate
from app.core.responses import Obj, Page
from app.core.rows import one_or_404
from app.core.session import db_session
from app.core.validation import MAX_TIMESTAMP_MS
from app.events.catalog import ALL_EVENT_TYPES
from app.events.service import EventAggregate, EventOut
from app.models.event import Event

router = APIRouter(tags=["events"])

_INTERVALS = {"minute": 60_000, "hour": 3_600_000, "day": 86_400_000, "week": 7 * 86_400_000}
_GROUPS = {"type": Event.type, "issuer_id": Event.issuer_id, "user_id": Event.user_id,
           "client_id": Event.client_id, "org_id": Event.org_id}


class EventFilters:
    def __init__(
        self,
        issuer_id: str | None = Query(None, max_length=64),
        user_id: str | None = Query(None, max_length=64),
        client_id: str | None = Query(None, max_length=64),
        event_types: str | None = Query(None, max_length=4096, description="Comma-separated types"),
        after: float | None = Query(None, ge=0, le=MAX_TIMESTAMP_MS, allow_inf_nan=False,
                                       description="Unix ms, exclusive"),
        before: float | None = Query(None, ge=0, le=MAX_TIMESTAMP_MS, allow_inf_nan=False,
                                       description="Unix ms, exclusive"),
    ) -> None:
        self.issuer_id, self.user_id, self.client_id = issuer_id, user_id, client_id
        self.after, self.before = after, before
        self.types: list[str] | None = None
        if event_types:
            self.types = [t.strip() for t in event_types.split(",") if t.strip()]
            unknown = [t for t in self.types if t not in ALL_EVENT_TYPES]
            if unknown:
                raise ValidationFailed(f"Unknown event types: {', '.join(unknown[:5])}",
                                       field="event_types")

    def apply(self, stmt: Select[Any], account_id: str) -> Select[Any]:
        stmt = stmt.where(Event.account_id == account_id)
        if self.issuer_id:
            stmt = stmt.where(Event.issuer_id == self.issuer_id)
        if self.user_id:
            stmt = stmt.where(Event.user_id == self.user_id)
        if self.client_id:
            stmt = stmt.where(Event.client_id == self.client_id)
        if self.types:
            stmt = stmt.where(Event.type.in_(self.types))
        if self.after is not None:
            stmt = stmt.where(Event.timestamp > int(self.after))
        if self.before is not None:
            stmt = stmt.where(Event.timestamp < int(self.before))
        return stmt


@router.get("/accounts/{account_id}/events", response_model=Page[EventOut])
async def list_events(
    account_id: str,
    filters: EventFilters = Depends(),
    params: PageParams = Depends(page_params),
    _: Principal = Depends(scoped("events", "read")),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """The account's identity events, newest first."""
    stmt = filters.apply(select(Event), account_id)
    rows, has_more, cursor = await paginate(session, stmt, Event.id, params)
    return envelopes.page([EventOut.of(e) for e in rows], has_more=has_more, next_cursor=cursor)


@router.get("/accounts/{account_id}/events/aggregate", response_model=Obj[EventAggregate])
async def aggregate_events(
    account_id: str,
    filters: EventFilters = Depends(),
    group_by: Literal["type", "issuer_id", "user_id", "client_id", "org_id"] | None = Query(None),
    interval: Literal["minute", "hour", "day", "week"] | None = Query(None),
    count_unique: Literal["user_id", "client_id", "issuer_id", "org_id"] | None = Query(None),
    _: Principal = Depends(scoped("events", "read")),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Counts of events, by type (or another key) and/or by time interval."""
    if group_by is None and interval is None:
        group_by = "type"
    keys: list[Any] = []
    labels: list[str] = []
    if interval:
        step = _INTERVALS[interval]
        keys.append(((Event.timestamp // step) * step).label("start"))
        labels.append("start")
    if group_by:
        keys.append(_GROUPS[group_by].label("key"))
        labels.append("key")
    measure = (func.count(func.distinct(_GROUPS[count_unique])) if count_unique else func.count())
    stmt = filters.apply(select(*keys, measure.label("count")), account_id).group_by(*keys)
    stmt = stmt.order_by(*keys).limit(10_000)
    buckets = []
    for row in (await session.execute(stmt)).all():
        bucket: dict[str, Any] = {"count": int(row.count)}
        if interval:
            bucket["start"] = int(row.start)
            bucket["end"] = int(row.start) + _INTERVALS[interval]
        if group_by:
            bucket[group_by] = row.key
        buckets.append(bucket)
    return envelopes.obj(EventAggregate(buckets=buckets, interval=interval, group_by=group_by))


@router.get("/accounts/{account_id}/events/{event_id}", response_model=Obj[EventOut])
async def get_event(
    account_id: str,
    event_id: str,
    _: Principal = Depends(scoped("events", "read")),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """One event, exactly as webhooks deliver it."""
    stmt = select(Event).where(Event.id == event_id, Event.account_id == account_id)
    event = await one_or_404(session, stmt, "event")
    return envelopes.obj(EventOut.of(event), etag_ms=event.timestamp)
