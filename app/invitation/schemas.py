"""Invitation bodies and the `OrganizationInvitationPublic` shape (SDK-CONTRACT §2.17, §3.1)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import StringConstraints, field_validator

from app.core.ids import now_ms
from app.core.validation import Description, Metadata, ScopeList, ShortText, StrictModel, TimestampMs
from app.membership.schemas import GroupIds
from app.models.invitation import Invitation
from app.user.schemas import username_error

Email = Annotated[str, StringConstraints(min_length=3, max_length=320)]

DEFAULT_TTL_MS = 7 * 24 * 3600 * 1000


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


def invitation_to_api(inv: Invitation) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": inv.id,
        "org_id": inv.org_id,
        "issuer_id": inv.issuer_id,
        "status": effective_status(inv),
        "email_invited": inv.email_invited,
        "user_id_invited": inv.user_id_invited,
        # Required-nullable in the SDK model: always present, even when null.
        "user_title": inv.user_title,
        "message": inv.message,
        "scopes": list(inv.scopes),
        "groups": list(inv.groups),
        "inviter": inv.inviter or None,
        "created_at": inv.created_at,
        "updated_at": inv.updated_at,
        "expires_at": inv.expires_at,
        "accepted_at": inv.accepted_at,
        "declined_at": inv.declined_at,
        "revoked_at": inv.revoked_at,
        "last_email_sent_at": inv.last_email_sent_at,
        "metadata": inv.metadata_,
    }
    return out
