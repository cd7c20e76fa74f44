"""Group bodies and the `Group` shape (SDK-CONTRACT §2.17, §3.1)."""

from __future__ import annotations

from typing import Any

from app.core.validation import Description, Metadata, Name, ScopeList, StrictModel
from app.models.group import Group


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


def group_to_api(group: Group) -> dict[str, Any]:
    return {
        "id": group.id,
        "org_id": group.org_id,
        "issuer_id": group.issuer_id,
        "name": group.name,
        "description": group.description,
        "scopes": list(group.scopes),
        "metadata": group.metadata_,
        "created_at": group.created_at,
        "updated_at": group.updated_at,
    }
