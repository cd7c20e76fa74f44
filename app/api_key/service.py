"""API keys of accounts and organizations: creation (the secret is shown once) and lookups."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.auth import Principal
from app.core.crypto import generate_secret, hash_secret, secret_hint
from app.core.ids import new_id, now_ms
from app.events.service import record
from app.models.api_key import ApiKey

SECRET_PREFIX = "sk_"


def new_secret() -> str:
    return SECRET_PREFIX + generate_secret(32)


async def create_api_key(
    session: AsyncSession,
    *,
    account_id: str,
    owner_kind: str,
    issuer_id: str,
    org_id: str,
    name: str,
    restrictions: dict[str, Any],
    auth: Principal | dict[str, Any] | None,
    description: str | None = None,
    tags: list[str] | None = None,
    expires_at: int | None = None,
    metadata: dict[str, Any] | None = None,
    key_type: str = "api_key",
) -> tuple[ApiKey, str]:
    """Create a key and its `api-key.created` event; returns the key and its one-time secret."""
    import asyncio

    secret = new_secret()
    # argon2 is deliberately slow: keep it off the event loop.
    secret_hash = await asyncio.to_thread(hash_secret, secret)
    key = ApiKey(
        id=new_id("key"),
        account_id=account_id,
        owner_kind=owner_kind,
        issuer_id=issuer_id,
        org_id=org_id,
        type=key_type,
        name=name,
        description=description,
        tags=tags or [],
        restrictions=restrictions,
        secret_hash=secret_hash,
        secret_hint=secret_hint(secret),
        expires_at=expires_at,
        metadata_=metadata or {},
        status="active",
        created_at=now_ms(),
    )
    session.add(key)
    await session.flush()
    await record(
        session,
        type="api-key.created",
        account_id=account_id,
        issuer_id=issuer_id if owner_kind == "organization" else None,
        org_id=org_id if owner_kind == "organization" else None,
        subject={"type": "api_key", "id": key.id, "org_id": org_id, "issuer_id": issuer_id},
        data={"name": name, "owner": owner_kind, "scopes": restrictions.get("scopes", [])},
        auth=auth,
    )
    return key, secret
