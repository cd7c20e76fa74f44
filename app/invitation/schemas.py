"""Invitation bodies and the `OrganizationInvitationPublic` shape (SDK-CONTRACT §2.17, §3.1)."""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import Field, StringConstraints, field_validator

from app.core.ids import now_ms
from app.core.responses import JsonDict, ResponseModel, StrList, with_fields
from app.core.validation import Description, Metadata, ScopeList, ShortText, StrictModel, TimestampMs
from app.membership.schemas import GroupIds
from app.models.invitation import Invitation
from app.user.schemas import username_error

Email = Annotated[str, StringConstraints(min_length=3, max_length=320)]


def _future(value: int | None) -> int | None:
    if value is not None and value <= now_ms():
        raise ValueError("expires_at must be in the future (Unix milliseconds)")
    return value


class InvitationCreate(StrictModel):
    email: Email
    # Absent: the organization's default_member_scopes apply.
    scopes: ScopeList | None = None
    groups: GroupIds = []
    user_title: ShortText | None = None
    # Absent: the organization's invitation_message.
    message: Description | None = None
    expires_at: TimestampMs | None = None
    metadata: Metadata | None = None

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        value = value.strip()
        if username_error("email", value):
            raise ValueError("must be an email address")
        return value

    _expiry = field_validator("expires_at")(_future)


class InvitationUpdate(StrictModel):
    scopes: ScopeList | None = None
    groups: GroupIds | None = None
    user_title: ShortText | None = None
    message: Description | None = None
    expires_at: TimestampMs | None = None
    metadata: Metadata | None = None

    _expiry = field_validator("expires_at")(_future)


def effective_status(inv: Invitation, now: int | None = None) -> str:
    """A pending invitation past its expiry reads as `expired` without a write."""
    if inv.status == "pending" and inv.expires_at <= (now or now_ms()):
        return "expired"
    return inv.status


class InvitationOut(ResponseModel):
    id: str
    org_id: str
    issuer_id: str
    status: str
    email_invited: str | None
    user_id_invited: str | None
    # Required-nullable in the SDK model: always present, even when null.
    user_title: str | None
    message: str | None
    scopes: StrList
    groups: StrList
    inviter: dict[str, Any] | None
    created_at: int
    updated_at: int | None
    expires_at: int
    accepted_at: int | None
    declined_at: int | None
    revoked_at: int | None
    last_email_sent_at: int | None
    metadata: JsonDict = Field(validation_alias="metadata_")

    @classmethod
    def of(cls, row: Invitation) -> Self:
        return cls.model_validate(with_fields(row, status=effective_status(row), inviter=row.inviter or None))
