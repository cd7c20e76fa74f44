"""Membership bodies and the `OrganizationMembership` shape (SDK-CONTRACT §2.17, §3.1)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, StringConstraints

from app.core.validation import Metadata, ScopeList, ShortText, StrictModel
from app.models.membership import Membership

GroupId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
GroupIds = Annotated[list[GroupId], Field(max_length=50), AfterValidator(lambda v: list(dict.fromkeys(v)))]
MemberId = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class MemberCreate(StrictModel):
    member_id: MemberId
    member_type: Literal["user"] = "user"
    # Absent: the organization's default_member_scopes apply.
    scopes: ScopeList | None = None
    groups: GroupIds = []
    user_title: ShortText | None = None
    metadata: Metadata | None = None
    status: Literal["active", "suspended"] = "active"


class MemberUpdate(StrictModel):
    scopes: ScopeList | None = None
    groups: GroupIds | None = None
    user_title: ShortText | None = None
    metadata: Metadata | None = None
    status: Literal["active", "suspended"] | None = None


def membership_to_api(m: Membership) -> dict[str, Any]:
    return {
        "org_id": m.org_id,
        "member_id": m.member_id,
        "member_type": m.member_type,
        "issuer_id": m.issuer_id,
        "status": m.status,
        "scopes": list(m.scopes),
        "groups": list(m.groups),
        "user_title": m.user_title,
        "metadata": m.metadata_,
        "joined_at": m.joined_at,
        "updated_at": m.updated_at,
    }
