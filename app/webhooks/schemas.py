"""Webhook request bodies and response shapes (SDK-CONTRACT §2.11-2.12, models Webhook*)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, StringConstraints, model_validator

from app.core.validation import Description, Metadata, Name, StrictModel, TimestampMs, Url
from app.events.catalog import WEBHOOK_EVENT_TYPES
from app.models.webhook import Webhook
from app.models.webhook_delivery import WebhookDelivery

AUTH_TYPE = "signature"
MAX_SUBJECT_FILTERS = 50


def _event_types(value: list[str]) -> list[str]:
    if not value:
        raise ValueError("at least one event type is required")
    for event_type in value:
        if event_type not in WEBHOOK_EVENT_TYPES:
            if "*" in event_type:
                raise ValueError(f"'{event_type}': wildcards are not allowed, list the event types")
            raise ValueError(f"'{event_type}' is not a deliverable webhook event type")
    return list(dict.fromkeys(value))


EventTypes = Annotated[list[Annotated[str, StringConstraints(max_length=80)]],
                       Field(max_length=len(WEBHOOK_EVENT_TYPES) + 10), AfterValidator(_event_types)]
IdFilter = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class SubjectFilter(StrictModel):
    """Deliver only events about this issuer / organization / user (every given key must match)."""

    issuer_id: IdFilter | None = None
    org_id: IdFilter | None = None
    user_id: IdFilter | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> SubjectFilter:
        if not (self.issuer_id or self.org_id or self.user_id):
            raise ValueError("a subject filter needs issuer_id, org_id or user_id")
        return self


class RetryPolicy(StrictModel):
    """Exponential backoff: delay(n) = min(max_delay_ms, initial_delay_ms * multiplier^(n-1)),
    spread by +/- jitter (a fraction), for at most max_attempts attempts in all."""

    max_attempts: int = Field(8, ge=1, le=20)
    initial_delay_ms: int = Field(5_000, ge=100, le=86_400_000)
    multiplier: float = Field(4.0, ge=1.0, le=10.0)
    max_delay_ms: int = Field(6 * 3_600_000, ge=100, le=7 * 86_400_000)
    jitter: float = Field(0.2, ge=0.0, le=1.0)


class CircuitBreakerPolicy(StrictModel):
    """Pause the endpoint after `failure_threshold` consecutive failed attempts spanning at least
    `min_failure_window_ms` (a short outage does not pause it); resumed by setting status active."""

    enabled: bool = True
    failure_threshold: int = Field(20, ge=1, le=10_000)
    min_failure_window_ms: int = Field(600_000, ge=0, le=30 * 86_400_000)


class SignatureAuthCreate(StrictModel):
    type: Literal["signature"]


class SignatureAuthUpdate(StrictModel):
    type: Literal["signature"]
    # True: a new secret, returned once in the update response; the old one keeps signing
    # alongside it for grace_period_seconds (default AUTHPI_WEBHOOKS_SECRET_GRACE_SECONDS).
    rotate: bool = False
    grace_period_seconds: int | None = Field(None, ge=0, le=7 * 86_400)


Status = Literal["active", "paused"]
Subjects = Annotated[list[SubjectFilter], Field(max_length=MAX_SUBJECT_FILTERS)]


class WebhookCreate(StrictModel):
    name: Name
    description: Description | None = None
    url: Url
    status: Status | None = None
    auth: SignatureAuthCreate
    events: EventTypes
    subjects: Subjects | None = None
    retry: RetryPolicy | None = None
    circuit_breaker: CircuitBreakerPolicy | None = None
    metadata: Metadata | None = None


class WebhookUpdate(StrictModel):
    name: Name | None = None
    description: Description | None = None
    url: Url | None = None
    status: Status | None = None
    status_reason: Annotated[str, StringConstraints(max_length=1024)] | None = None
    status_by: Annotated[str, StringConstraints(max_length=64)] | None = None
    auth: SignatureAuthUpdate | None = None
    events: EventTypes | None = None
    subjects: Subjects | None = None
    retry: dict[str, Any] | None = None
    circuit_breaker: dict[str, Any] | None = None
    metadata: Metadata | None = None


class RedeliverFailed(StrictModel):
    """Bulk redelivery: failed deliveries created in (after, before), optionally of some types."""

    after: TimestampMs | float | None = None
    before: TimestampMs | float | None = None
    event_types: list[Annotated[str, StringConstraints(max_length=80)]] | None = Field(None, max_length=200)


def policy_with_defaults(model: type[StrictModel], current: dict[str, Any] | None,
                         changes: dict[str, Any] | None) -> dict[str, Any]:
    """A full policy: defaults, overlaid by the stored values, overlaid by the requested changes."""
    merged = {**(current or {}), **(changes or {})}
    return model.model_validate(merged).model_dump()


def webhook_auth(webhook: Webhook) -> dict[str, Any]:
    """What get/list show of the signing secret: never the secret itself."""
    out: dict[str, Any] = {"type": AUTH_TYPE}
    if webhook.secret_rotated_at:
        out["rotated_at"] = webhook.secret_rotated_at
    if webhook.previous_secret_encrypted and webhook.previous_secret_expires_at:
        out["previous_secret_expires_at"] = webhook.previous_secret_expires_at
    return out


def webhook_to_api(webhook: Webhook, *, new_secret: str | None = None) -> dict[str, Any]:
    auth = webhook_auth(webhook)
    if new_secret is not None:
        auth["secret"] = new_secret
    return {
        "id": webhook.id,
        "account_id": webhook.account_id,
        "name": webhook.name,
        "description": webhook.description,
        "url": webhook.url,
        "status": webhook.status,
        "status_at": webhook.status_at,
        "status_reason": webhook.status_reason,
        "status_by": webhook.status_by,
        "auth": auth,
        "events": list(webhook.events),
        "subjects": list(webhook.subjects),
        "retry": policy_with_defaults(RetryPolicy, webhook.retry, None),
        "circuit_breaker": policy_with_defaults(CircuitBreakerPolicy, webhook.circuit_breaker, None),
        "metadata": webhook.metadata_,
        "created_at": webhook.created_at,
        "updated_at": webhook.updated_at,
    }


def webhook_list_item(webhook: Webhook) -> dict[str, Any]:
    return {
        "id": webhook.id,
        "account_id": webhook.account_id,
        "status": webhook.status,
        "name": webhook.name,
        "description": webhook.description,
        "url": webhook.url,
        "auth_type": AUTH_TYPE,
        "events": list(webhook.events),
        "status_at": webhook.status_at,
        "status_reason": webhook.status_reason,
        "status_by": webhook.status_by,
        "created_at": webhook.created_at,
        "updated_at": webhook.updated_at,
    }


def delivery_to_api(delivery: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "webhook_id": delivery.webhook_id,
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "status": delivery.status,
        "attempt_count": delivery.attempt_count,
        "first_attempted_at": delivery.first_attempted_at,
        "last_attempted_at": delivery.last_attempted_at,
        "next_attempt_at": delivery.next_attempt_at if delivery.status == "pending" else None,
        "retry_workflow_id": None,
        "attempt_budget": delivery.attempt_budget,
        "last_error": delivery.last_error,
        "last_response_status": delivery.last_response_status,
        "created_at": delivery.created_at,
        "updated_at": delivery.updated_at,
    }
