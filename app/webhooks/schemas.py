"""Webhook request bodies and response shapes (SDK-CONTRACT §2.11-2.12, models Webhook*)."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, Field, StringConstraints, model_validator

from app.core.responses import JsonDict, ResponseModel, with_fields
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


class WebhookAuthOut(ResponseModel):
    """The signing secret appears only in the create answer and a rotation's answer."""

    omit_if_none = ("rotated_at", "previous_secret_expires_at", "secret")

    type: str = AUTH_TYPE
    rotated_at: int | None = None
    previous_secret_expires_at: int | None = None
    secret: str | None = None


class WebhookOut(ResponseModel):
    id: str
    account_id: str
    name: str
    description: str | None
    url: str
    status: str
    status_at: int | None
    status_reason: str | None
    status_by: str | None
    auth: WebhookAuthOut
    events: list[str]
    subjects: list[dict[str, Any]]
    retry: RetryPolicy
    circuit_breaker: CircuitBreakerPolicy
    metadata: JsonDict = Field(validation_alias="metadata_")
    created_at: int
    updated_at: int | None

    @classmethod
    def of_webhook(cls, webhook: Webhook, *, new_secret: str | None = None) -> Self:
        auth = webhook_auth(webhook)
        if new_secret is not None:
            auth["secret"] = new_secret
        return cls.model_validate(with_fields(
            webhook, auth=auth,
            retry=policy_with_defaults(RetryPolicy, webhook.retry, None),
            circuit_breaker=policy_with_defaults(CircuitBreakerPolicy, webhook.circuit_breaker, None)))

    @classmethod
    def of(cls, row: Webhook) -> Self:
        return cls.of_webhook(row)


class WebhookListItem(ResponseModel):
    id: str
    account_id: str
    status: str
    name: str
    description: str | None
    url: str
    auth_type: str = AUTH_TYPE
    events: list[str]
    status_at: int | None
    status_reason: str | None
    status_by: str | None
    created_at: int
    updated_at: int | None


class DeliveryOut(ResponseModel):
    id: str
    webhook_id: str
    event_id: str
    event_type: str
    status: str
    attempt_count: int
    first_attempted_at: int | None
    last_attempted_at: int | None
    next_attempt_at: int | None
    retry_workflow_id: str | None = None
    attempt_budget: int | None
    last_error: str | None
    last_response_status: int | None
    created_at: int
    updated_at: int | None

    @classmethod
    def of(cls, row: WebhookDelivery) -> Self:
        return cls.model_validate(with_fields(
            row, retry_workflow_id=None,
            next_attempt_at=row.next_attempt_at if row.status == "pending" else None))


class DeliveryTestOut(DeliveryOut):
    success: bool


class RedeliveryOut(ResponseModel):
    webhook_id: str
    requeued: int
    status: str
    after: int | None
    before: int | None
    requested_at: int
