"""Group bodies and the `Group` shape (SDK-CONTRACT §2.17, §3.1)."""

from __future__ import annotations

from pydantic import Field

from app.core.responses import JsonDict, ResponseModel, StrList
from app.core.validation import Description, Metadata, Name, ScopeList, StrictModel


class GroupCreate(StrictModel):
    name: Name
    description: Description | None = None
    scopes: ScopeList = []
    metadata: Metadata | None = None


class GroupUpdate(StrictModel):
    name: Name | None = None
    description: Description | None = None
    scopes: ScopeList | None = None
    metadata: Metadata | None = None


class GroupOut(ResponseModel):
    id: str
    org_id: str
    issuer_id: str
    name: str
    description: str | None
    scopes: StrList
    metadata: JsonDict = Field(validation_alias="metadata_")
    created_at: int
    updated_at: int | None
