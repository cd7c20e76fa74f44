"""Webhook endpoints and their deliveries: every query filters by the account (and webhook)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError
from sqlalchemy import Select, func, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.auth import Principal
from app.core.errors import Conflict, FieldError, NotFound, ValidationFailed
from app.core.ids import new_id, now_ms
from app.events.service import record
from app.models.event import Event
from app.models.issuer import Issuer
from app.models.organization import Organization
from app.models.user import User
from app.models.webhook import Webhook
from app.models.webhook_delivery import WebhookDelivery
from app.models.webhook_delivery_attempt import WebhookDeliveryAttempt
from app.webhooks import signing
from app.webhooks.delivery import AttemptResult, Sender, attempt, retry_delay_ms, seal_secret
from app.webhooks.schemas import (
    CircuitBreakerPolicy,
    RedeliverFailed,
    RetryPolicy,
    WebhookCreate,
    WebhookUpdate,
    policy_with_defaults,
)
from app.webhooks.url_safety import check_url

CHANNEL = "authpi_webhooks"
SYSTEM_BREAKER = {"type": "system", "actor": "circuit-breaker"}
DELIVERY_STATUSES = ("pending", "succeeded", "failed")


def _origin(url: str) -> str:
    # Webhook URLs often carry a token in the path or query: the trail keeps only the origin.
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def _subject(webhook: Webhook) -> dict[str, Any]:
    return {"type": "webhook", "id": webhook.id}


def _bump(webhook: Webhook) -> int:
    # ETags are the ms version: two writes in one millisecond must still differ.
    webhook.updated_at = max(now_ms(), webhook.version + 1)
    return webhook.updated_at


def _policy(model: type, current: dict[str, Any] | None, changes: dict[str, Any] | None, field: str
            ) -> dict[str, Any]:
    try:
        return policy_with_defaults(model, current, changes)
    except ValidationError as exc:
        fields = [FieldError(".".join([field, *(str(p) for p in e["loc"])]), e["type"], e["msg"])
                  for e in exc.errors()]
        raise ValidationFailed(f"The {field} policy is invalid", fields=fields) from exc


async def _check_url(url: str, allow_private: bool) -> None:
    problem = await check_url(url, allow_private=allow_private)
    if problem:
        raise ValidationFailed(f"The URL {problem}", field="url", code="unsafe_url")


async def notify_relays(session: AsyncSession) -> None:
    """Wake the relays once this transaction commits (requeued deliveries, a resumed endpoint)."""
    await session.execute(text("SELECT pg_notify(:c, '')"), {"c": CHANNEL})


_SUBJECT_MODELS: dict[str, Any] = {"issuer_id": Issuer, "org_id": Organization, "user_id": User}


async def _check_subjects(session: AsyncSession, account_id: str, subjects: list[Any] | None) -> None:
    """A subject filter must name an issuer, organization or user of this account (422 otherwise):
    a filter on someone else's id would silently match nothing."""
    for index, subject in enumerate(subjects or []):
        for field, model in _SUBJECT_MODELS.items():
            value = getattr(subject, field, None)
            if value is None:
                continue
            found = await session.scalar(select(model.id).where(model.id == value,
                                                                model.account_id == account_id))
            if found is None:
                raise ValidationFailed(f"subjects[{index}].{field} does not name one of this account's "
                                       f"{field.removesuffix('_id').replace('org', 'organization')}s",
                                       field=f"subjects.{index}.{field}", code="not_found")


async def create_webhook(session: AsyncSession, account_id: str, body: WebhookCreate, auth: Principal,
                         *, server_key: str, allow_private: bool) -> tuple[Webhook, str]:
    await _check_url(body.url, allow_private)
    await _check_subjects(session, account_id, body.subjects)
    secret = signing.generate_secret()
    now = now_ms()
    webhook = Webhook(
        id=new_id("wh"), account_id=account_id, name=body.name, description=body.description,
        url=body.url, status=body.status or "active", events=body.events,
        subjects=[s.model_dump(exclude_none=True) for s in body.subjects or []],
        retry=(body.retry or RetryPolicy()).model_dump(),
        circuit_breaker=(body.circuit_breaker or CircuitBreakerPolicy()).model_dump(),
        metadata_=body.metadata or {}, created_at=now, consecutive_failures=0,
    )
    if webhook.status != "active":
        webhook.status_at, webhook.status_by = now, auth.actor_id
    webhook.secret_encrypted = seal_secret(server_key, webhook.id, secret)
    session.add(webhook)
    await session.flush()
    await record(session, type="webhook.created", account_id=account_id, subject=_subject(webhook),
                 data={"name": webhook.name, "origin": _origin(webhook.url), "events": webhook.events,
                       "status": webhook.status}, auth=auth)
    return webhook, secret


async def get_webhook(session: AsyncSession, account_id: str, webhook_id: str, *, lock: bool = False
                      ) -> Webhook:
    stmt = select(Webhook).where(Webhook.id == webhook_id, Webhook.account_id == account_id)
    if lock:
        stmt = stmt.with_for_update()
    webhook = await session.scalar(stmt)
    if webhook is None:
        raise NotFound("webhook")
    return webhook


def list_webhooks_stmt(account_id: str, status: str | None) -> Select[Any]:
    stmt = select(Webhook).where(Webhook.account_id == account_id)
    if status:
        stmt = stmt.where(Webhook.status == status)
    return stmt


async def update_webhook(session: AsyncSession, webhook: Webhook, body: WebhookUpdate, auth: Principal,
                         *, server_key: str, allow_private: bool, grace_seconds: int
                         ) -> tuple[Webhook, str | None]:
    changes = body.model_dump(exclude_unset=True)
    now = now_ms()
    new_secret: str | None = None
    changed: list[str] = []
    if changes.get("url") is not None and changes["url"] != webhook.url:
        await _check_url(changes["url"], allow_private)
        webhook.url = changes["url"]
        changed.append("url")
    for field in ("name", "events"):
        if changes.get(field) is not None and changes[field] != getattr(webhook, field):
            setattr(webhook, field, changes[field])
            changed.append(field)
    if "description" in changes and changes["description"] != webhook.description:
        webhook.description = changes["description"]
        changed.append("description")
    if "subjects" in changes:
        await _check_subjects(session, webhook.account_id, body.subjects)
        webhook.subjects = [s.model_dump(exclude_none=True) for s in body.subjects or []]
        changed.append("subjects")
    if "metadata" in changes:
        webhook.metadata_ = changes["metadata"] or {}
        changed.append("metadata")
    if changes.get("retry") is not None:
        webhook.retry = _policy(RetryPolicy, webhook.retry, changes["retry"], "retry")
        changed.append("retry")
    if changes.get("circuit_breaker") is not None:
        webhook.circuit_breaker = _policy(CircuitBreakerPolicy, webhook.circuit_breaker,
                                          changes["circuit_breaker"], "circuit_breaker")
        changed.append("circuit_breaker")
    if body.auth is not None and body.auth.rotate:
        grace = body.auth.grace_period_seconds
        grace = grace_seconds if grace is None else grace
        new_secret = signing.generate_secret()
        webhook.previous_secret_encrypted = webhook.secret_encrypted if grace > 0 else None
        webhook.previous_secret_expires_at = now + grace * 1000 if grace > 0 else None
        webhook.secret_encrypted = seal_secret(server_key, webhook.id, new_secret)
        webhook.secret_rotated_at = now
        changed.append("auth")

    status_event: str | None = None
    new_status = changes.get("status")
    if new_status is not None and new_status != webhook.status:
        status_event = "webhook.paused" if new_status == "paused" else "webhook.resumed"
        webhook.status = new_status
        webhook.status_at = now
        webhook.status_reason = changes.get("status_reason")
        webhook.status_by = changes.get("status_by") or auth.actor_id
        if new_status == "active":
            # A resumed endpoint starts with a closed breaker; its held deliveries go out now.
            webhook.consecutive_failures, webhook.failing_since = 0, None
    elif new_status is None and ("status_reason" in changes or "status_by" in changes):
        webhook.status_reason = changes.get("status_reason", webhook.status_reason)
        webhook.status_by = changes.get("status_by", webhook.status_by)
        changed.append("status_reason")

    if changed or status_event:
        _bump(webhook)
        await session.flush()
    if status_event:
        await record(session, type=status_event, account_id=webhook.account_id, subject=_subject(webhook),
                     data={"status": webhook.status, "reason": webhook.status_reason}, auth=auth)
        if webhook.status == "active":
            await notify_relays(session)
    if changed:
        await record(session, type="webhook.updated", account_id=webhook.account_id,
                     subject=_subject(webhook), data={"changed": sorted(changed)}, auth=auth)
    return webhook, new_secret


async def delete_webhook(session: AsyncSession, webhook: Webhook, auth: Principal) -> None:
    data = {"name": webhook.name, "origin": _origin(webhook.url)}
    await session.delete(webhook)
    await session.flush()
    await record(session, type="webhook.deleted", account_id=webhook.account_id, subject=_subject(webhook),
                 data=data, auth=auth)


def list_deliveries_stmt(webhook: Webhook, *, event_type: str | None, status: str | None,
                         after: float | None, before: float | None) -> Select[Any]:
    stmt = select(WebhookDelivery).where(WebhookDelivery.account_id == webhook.account_id,
                                         WebhookDelivery.webhook_id == webhook.id)
    if event_type:
        stmt = stmt.where(WebhookDelivery.event_type == event_type)
    if status:
        if status not in DELIVERY_STATUSES:
            raise ValidationFailed(f"status must be one of {', '.join(DELIVERY_STATUSES)}", field="status")
        stmt = stmt.where(WebhookDelivery.status == status)
    if after is not None:
        stmt = stmt.where(WebhookDelivery.created_at > int(after))
    if before is not None:
        stmt = stmt.where(WebhookDelivery.created_at < int(before))
    return stmt


def apply_result(delivery: WebhookDelivery, result: AttemptResult, *, policy: dict[str, Any],
                 manual: bool, retry_delay: int | None) -> WebhookDeliveryAttempt:
    """Record one attempt on the delivery; returns the attempt row to add."""

    delivery.attempt_count += 1
    if manual:
        # A manual redelivery does not eat into the scheduled retries.
        delivery.attempt_budget += 1
    delivery.first_attempted_at = delivery.first_attempted_at or result.started_at
    delivery.last_attempted_at = result.started_at
    delivery.last_response_status = result.status
    delivery.last_error = None if result.ok else (result.error or "failed")[:1024]
    delivery.updated_at = max(now_ms(), delivery.version + 1)
    if result.ok:
        delivery.status, delivery.next_attempt_at = "succeeded", None
    elif delivery.status == "pending" and delivery.attempt_count < delivery.attempt_budget:
        if not manual:
            delay = retry_delay if retry_delay is not None else retry_delay_ms(policy, delivery.attempt_count)
            delivery.next_attempt_at = result.started_at + result.duration_ms + delay
    elif not manual or delivery.status == "pending":
        delivery.status, delivery.next_attempt_at = "failed", None
    return WebhookDeliveryAttempt(
        id=new_id("wha"), account_id=delivery.account_id, webhook_id=delivery.webhook_id,
        delivery_id=delivery.id, attempt=delivery.attempt_count, trigger="manual" if manual else "relay",
        started_at=result.started_at, duration_ms=result.duration_ms, response_status=result.status,
        response_body=result.body, error=result.error)


async def record_health(session: AsyncSession, webhook_id: str, *, succeeded: bool, trailing_failures: int,
                        first_failure_at: int | None) -> None:
    """Keep the breaker's count of consecutive failed attempts; trip it (pause the endpoint, with
    its webhook.paused event) when the policy says so. Runs in its own short transaction.

    `succeeded`: some attempt of this batch succeeded; `trailing_failures` failed after the last one.
    """
    webhook = await session.scalar(select(Webhook).where(Webhook.id == webhook_id).with_for_update())
    if webhook is None:
        return
    if succeeded:
        webhook.consecutive_failures = trailing_failures
        webhook.failing_since = first_failure_at if trailing_failures else None
    else:
        webhook.consecutive_failures += trailing_failures
        webhook.failing_since = webhook.failing_since or first_failure_at
    if not trailing_failures:
        return
    policy = policy_with_defaults(CircuitBreakerPolicy, webhook.circuit_breaker, None)
    now = now_ms()
    if (policy["enabled"] and webhook.status == "active"
            and webhook.consecutive_failures >= policy["failure_threshold"]
            and now - (webhook.failing_since or now) >= policy["min_failure_window_ms"]):
        webhook.status, webhook.status_at = "paused", now
        webhook.status_reason = (f"circuit breaker: {webhook.consecutive_failures} consecutive failed "
                                 "attempts; set status active to resume")
        webhook.status_by = "circuit-breaker"
        _bump(webhook)
        await session.flush()
        await record(session, type="webhook.paused", account_id=webhook.account_id,
                     subject=_subject(webhook),
                     data={"status": "paused", "reason": webhook.status_reason,
                           "consecutive_failures": webhook.consecutive_failures}, auth=SYSTEM_BREAKER)


async def redeliver_one(session: AsyncSession, webhook: Webhook, delivery_id: str, *, sender: Sender,
                        server_key: str, precondition: Callable[[WebhookDelivery], None] | None = None
                        ) -> tuple[WebhookDelivery, bool]:
    """One manual attempt now, whatever the delivery's state (and even if the endpoint is paused)."""
    stmt = (select(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id, WebhookDelivery.account_id == webhook.account_id,
                   WebhookDelivery.webhook_id == webhook.id)
            .with_for_update(nowait=True))
    try:
        delivery = await session.scalar(stmt)
    except DBAPIError as exc:
        if "could not obtain lock" in str(exc) or "LockNotAvailable" in repr(exc):
            raise Conflict("The delivery is being attempted right now; retry shortly",
                           extra={"retryable": True}) from exc
        raise
    if delivery is None:
        raise NotFound("delivery")
    if precondition is not None:
        precondition(delivery)
    event = await session.scalar(select(Event).where(Event.id == delivery.event_id,
                                                     Event.account_id == webhook.account_id))
    if event is None:
        raise NotFound("event")
    result = await attempt(sender, webhook, event, server_key)
    session.add(apply_result(delivery, result, policy=webhook.retry, manual=True, retry_delay=None))
    await session.flush()
    return delivery, result.ok


async def redeliver_failed(session: AsyncSession, webhook: Webhook, body: RedeliverFailed) -> dict[str, Any]:
    """Requeue the failed deliveries in the window with a fresh attempt budget; the relay sends them."""
    policy = policy_with_defaults(RetryPolicy, webhook.retry, None)
    now = now_ms()
    stmt = (update(WebhookDelivery)
            .where(WebhookDelivery.account_id == webhook.account_id,
                   WebhookDelivery.webhook_id == webhook.id, WebhookDelivery.status == "failed")
            .values(status="pending", next_attempt_at=func.authpi_webhooks_now_ms(),
                    attempt_budget=WebhookDelivery.attempt_count + policy["max_attempts"], updated_at=now)
            .returning(WebhookDelivery.id))
    if body.after is not None:
        stmt = stmt.where(WebhookDelivery.created_at > int(body.after))
    if body.before is not None:
        stmt = stmt.where(WebhookDelivery.created_at < int(body.before))
    if body.event_types:
        stmt = stmt.where(WebhookDelivery.event_type.in_(body.event_types))
    ids = list((await session.execute(stmt, execution_options={"synchronize_session": False})).scalars())
    if ids:
        await notify_relays(session)
    return {"webhook_id": webhook.id, "requeued": len(ids), "status": "pending",
            "after": body.after, "before": body.before, "requested_at": now}
