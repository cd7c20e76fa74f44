from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field

from app.core.responses import JsonDict, ResponseModel, with_fields
from app.core.validation import Description, Metadata, Name, StrictModel, Url

# Accounts are facades over organizations of AuthPI's own issuer (contract §3.1 Account).
AUTHPI_ISSUER_ID = "i_authpi"


class AccountUpdate(StrictModel):
    name: Name | None = None
    description: Description | None = None
    logo_url: Url | None = None
    owner_user_id: str | None = None
    metadata: Metadata | None = None


class AccountDomain(BaseModel):
    """A domain of the account (`{A}/domains`)."""

    model_config = ConfigDict(extra="allow")

    host: str


class AccountOrganization(ResponseModel):
    """The organization of AuthPI's own issuer that the account is a facade over."""

    id: str = Field(validation_alias="org_id")
    issuer_id: str = AUTHPI_ISSUER_ID
    status: str
    org_type: str = "account"
    name: str
    description: str | None
    logo_url: str | None
    created_at: int
    updated_at: int | None


class AccountOut(ResponseModel):
    omit_if_none = ("owner_user_id",)

    id: str
    name: str
    organization: AccountOrganization
    domains: list[Any]
    metadata: JsonDict = Field(validation_alias="metadata_")
    owner_user_id: str | None = None
    created_at: int
    updated_at: int | None

    @classmethod
    def of(cls, row: Any) -> Self:
        return cls.model_validate(with_fields(row, organization=row))
