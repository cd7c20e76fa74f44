"""Organization bodies and the `Organization` / `IssuerOrganizationsListItem` shapes (§2.16, §3.1)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from app.core.validation import (
    Description,
    JsonObject,
    Metadata,
    Name,
    ScopeList,
    ShortText,
    StrictModel,
    Url,
)
from app.models.organization import Organization

OrgType = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9_\-]*$")]
Country = Annotated[str, StringConstraints(min_length=2, max_length=64)]


class Address(StrictModel):
    country: Country
    line1: ShortText | None = None
    line2: ShortText | None = None
    city: ShortText | None = None
    state: ShortText | None = None
    postal_code: Annotated[str, StringConstraints(max_length=32)] | None = None


# Display data kept together in the `profile` column.
PROFILE_FIELDS = ("address", "business_details", "contact", "social_links", "custom_fields")


class _OrganizationFields(StrictModel):
    description: Description | None = None
    logo_url: Url | None = None
    max_members: Annotated[int, Field(ge=1, le=10_000_000)] | None = None
    default_member_scopes: ScopeList | None = None
    invitation_enabled: bool | None = None
    invitation_message: Description | None = None
    scopes: ScopeList | None = None
    security: JsonObject | None = None
    sso: JsonObject | None = None
    address: Address | None = None
    business_details: JsonObject | None = None
    contact: JsonObject | None = None
    social_links: Annotated[list[JsonObject], Field(max_length=50)] | None = None
    custom_fields: JsonObject | None = None
    metadata: Metadata | None = None


class OrganizationCreate(_OrganizationFields):
    name: Name
    org_type: OrgType = "standard"


class OrganizationUpdate(_OrganizationFields):
    name: Name | None = None
    # Deletion has its own route; PATCH moves between these two only.
    status: Literal["active", "suspended"] | None = None
    status_reason: Annotated[str, StringConstraints(max_length=1024)] | None = None


def organization_to_api(org: Organization) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": org.id,
        "issuer_id": org.issuer_id,
        "status": org.status,
        "status_at": org.status_at,
        "status_reason": org.status_reason,
        "status_by": org.status_by,
        "name": org.name,
        "description": org.description,
        "logo_url": org.logo_url,
        "org_type": org.org_type,
        "max_members": org.max_members,
        "default_member_scopes": list(org.default_member_scopes),
        "invitation_enabled": org.invitation_enabled,
        "invitation_message": org.invitation_message,
        "scopes": list(org.scopes),
        "security": org.security,
        "sso": org.sso,
        "metadata": org.metadata_,
        "created_at": org.created_at,
        "updated_at": org.updated_at,
    }
    for name in PROFILE_FIELDS:
        if name in org.profile:
            out[name] = org.profile[name]
    return out


def organization_list_item(org: Organization) -> dict[str, Any]:
    return {
        "id": org.id,
        "issuer_id": org.issuer_id,
        "name": org.name,
        "logo_url": org.logo_url,
        "status": org.status,
        "org_type": org.org_type,
        "sso": org.sso,
        "security": org.security,
        "scopes": list(org.scopes),
        "invitation_enabled": org.invitation_enabled,
        "max_members": org.max_members,
        "default_member_scopes": list(org.default_member_scopes),
        "created_at": org.created_at,
        "updated_at": org.updated_at,
    }


class DomainAdd(StrictModel):
    domain: Annotated[str, StringConstraints(min_length=1, max_length=253)]
