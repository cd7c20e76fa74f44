from __future__ import annotations

from typing import Any

from app.core.validation import Description, Metadata, Name, StrictModel, Url
from app.models.account import Account

# Accounts are facades over organizations of AuthPI's own issuer (contract §3.1 Account).
AUTHPI_ISSUER_ID = "i_authpi"


class AccountUpdate(StrictModel):
    name: Name | None = None
    description: Description | None = None
    logo_url: Url | None = None
    owner_user_id: str | None = None
    metadata: Metadata | None = None


def account_to_api(account: Account) -> dict[str, Any]:
    organization = {
        "id": account.org_id,
        "issuer_id": AUTHPI_ISSUER_ID,
        "status": account.status,
        "org_type": "account",
        "name": account.name,
        "description": account.description,
        "logo_url": account.logo_url,
        "created_at": account.created_at,
        "updated_at": account.updated_at,
    }
    out: dict[str, Any] = {
        "id": account.id,
        "name": account.name,
        "organization": organization,
        "domains": account.domains,
        "metadata": account.metadata_,
        "created_at": account.created_at,
        "updated_at": account.updated_at,
    }
    if account.owner_user_id:
        out["owner_user_id"] = account.owner_user_id
    return out
