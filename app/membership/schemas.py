"""Membership bodies and the `OrganizationMembership` shape (SDK-CONTRACT §2.17, §3.1)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints

from app.core.responses import JsonDict, ResponseModel, StrList
from app.core.validation import Metadata, ScopeList, ShortText, StrictModel

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


class MembershipOut(ResponseModel):
    org_id: str
    member_id: str
    member_type: str
    issuer_id: str
    status: str
    scopes: StrList
    groups: StrList
    user_title: str | None
    metadata: JsonDict = Field(validation_alias="metadata_")
    joined_at: int
    updated_at: int | None
