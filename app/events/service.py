"""The one helper every mutation calls to record its event, in the caller's transaction."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.auth import Principal
from app.core.ids import new_id, now_ms
from app.core.responses import ResponseModel
from app.events.catalog import ALL_EVENT_TYPES, is_deliverable
from app.models.event import Event
from app.observability.context import current_request_id

EVENT_SPEC = "authpi.event/1.0"
# Keys that must never reach the trail, whatever a caller passes in `data`.
_SECRET_MARKERS = ("secret", "password", "hash", "token_plain", "private")


def _scrub(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()
                if not any(m in k.lower() for m in _SECRET_MARKERS)}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def source_for(account_id: str, issuer_id: str | None) -> str:
    return f"/v1/accounts/{account_id}" + (f"/issuers/{issuer_id}" if issuer_id else "")


def build_event(
    *,
    type: str,
    account_id: str,
    subject: dict[str, Any],
    data: dict[str, Any] | None = None,
    auth: Principal | dict[str, Any] | None = None,
    issuer_id: str | None = None,
    org_id: str | None = None,
    user_id: str | None = None,
    client_id: str | None = None,
    trigger: str | None = None,
    trace: str | None = None,
    event_id: str | None = None,
    timestamp: int | None = None,
) -> Event:
    """An Event row, not yet added: `record` adds it; the metered batcher inserts many at once."""
    if type not in ALL_EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}: add it to app/events/catalog.py")
    auth_value = auth.event_auth() if isinstance(auth, Principal) else auth
    return Event(
        id=event_id or new_id("evt"),
        account_id=account_id,
        issuer_id=issuer_id,
        org_id=org_id,
        user_id=user_id,
        client_id=client_id,
        type=type,
        source=source_for(account_id, issuer_id),
        timestamp=timestamp or now_ms(),
        subject=_scrub(subject),
        data=_scrub(data or {}),
        auth=auth_value,
        trigger=trigger,
        # The request id of the request that caused it (see app/observability).
        trace=trace if trace is not None else current_request_id(),
        deliverable=is_deliverable(type),
    )


async def record(session: AsyncSession, **kwargs: Any) -> Event:
    """Record an event in the same transaction as the change it describes (see build_event)."""
    event = build_event(**kwargs)
    session.add(event)
    await session.flush()
    return event


class EventOut(ResponseModel):
    """The contract's `Event` shape: also the exact webhook payload."""

    omit_if_none = ("auth", "trigger", "trace")

    spec: str = EVENT_SPEC
    id: str
    type: str
    source: str
    timestamp: int
    subject: dict[str, Any]
    data: dict[str, Any]
    auth: dict[str, Any] | None = None
    trigger: str | None = None
    trace: str | None = None


class EventBucket(BaseModel):
    """One bucket: `count`, its interval's `start`/`end` (ms), and the group_by key's value."""

    model_config = ConfigDict(extra="allow")

    count: int
    start: int | None = None
    end: int | None = None


class EventAggregate(BaseModel):
    buckets: list[EventBucket]
    interval: str | None
    group_by: str | None


def event_to_api(event: Event) -> dict[str, Any]:
    """The webhook payload: the event exactly as `GET {A}/events/{id}` answers it."""
    return EventOut.of(event).model_dump(mode="json")
