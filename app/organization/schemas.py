"""Organization bodies and the `Organization` / `IssuerOrganizationsListItem` shapes (§2.16, §3.1)."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import Field, StringConstraints

from app.core.responses import JsonDict, ResponseModel, StrList, with_fields
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
from app.identity.providers import redirect_uri
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


class OrganizationOut(ResponseModel):
    omit_if_none = PROFILE_FIELDS

    id: str
    issuer_id: str
    status: str
    status_at: int | None
    status_reason: str | None
    status_by: str | None
    name: str
    description: str | None
    logo_url: str | None
    org_type: str
    max_members: int | None
    default_member_scopes: StrList
    invitation_enabled: bool | None
    invitation_message: str | None
    scopes: StrList
    security: dict[str, Any] | None
    sso: dict[str, Any] | None
    metadata: JsonDict = Field(validation_alias="metadata_")
    created_at: int
    updated_at: int | None
    # Display data kept together in the `profile` column; absent when never set.
    address: dict[str, Any] | None = None
    business_details: dict[str, Any] | None = None
    contact: dict[str, Any] | None = None
    social_links: list[dict[str, Any]] | None = None
    custom_fields: dict[str, Any] | None = None

    @classmethod
    def of(cls, row: Organization, public_url: str) -> Self:
        profile = row.profile or {}
        return cls.model_validate(with_fields(row, sso=sso_view(row, public_url),
                                              **{name: profile.get(name) for name in PROFILE_FIELDS}))


class OrganizationListItem(ResponseModel):
    id: str
    issuer_id: str
    name: str
    logo_url: str | None
    status: str
    org_type: str
    sso: dict[str, Any] | None
    security: dict[str, Any] | None
    scopes: StrList
    invitation_enabled: bool | None
    max_members: int | None
    default_member_scopes: StrList
    created_at: int
    updated_at: int | None

    @classmethod
    def of(cls, row: Organization, public_url: str) -> Self:
        return cls.model_validate(with_fields(row, sso=sso_view(row, public_url)))


def sso_view(org: Organization, public_url: str) -> dict[str, Any]:
    """The stored `sso` with, for an OIDC connection, the read-only `redirect_uri` to register at the
    organization's IdP and whether a client secret is set (never the secret)."""
    sso = dict(org.sso or {})
    connection = sso.get("connection")
    if isinstance(connection, dict) and connection.get("type") == "oidc":
        sso["connection"] = {**connection, "client_secret_set": org.sso_client_secret_encrypted is not None,
                             "redirect_uri": redirect_uri(public_url, org.issuer_id, org.id)}
    return sso


class DomainAdd(StrictModel):
    domain: Annotated[str, StringConstraints(min_length=1, max_length=253)]
