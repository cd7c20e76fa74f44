"""Verifying `key_id:secret` (HTTP Basic) into a Principal.

Baseline implementation: one lookup and one argon2id verification (off the event loop) per request.
"""

from __future__ import annotations

import asyncio

from fastapi import Request
from sqlalchemy import select

from app.core.auth import Principal
from app.core.crypto import verify_secret
from app.core.errors import Unauthorized
from app.core.ids import looks_like_id, now_ms
from app.models.api_key import ApiKey
from app.models.organization import Organization


async def verify_basic(request: Request, key_id: str, secret: str) -> Principal:
    if not looks_like_id(key_id, "key") or len(secret) > 256:
        raise Unauthorized("Invalid API key")
    db = request.app.state.db
    async with db.sessionmaker() as session:
        key = await session.get(ApiKey, key_id)
        org_status = None
        if key is not None and key.owner_kind == "organization":
            org_status = await session.scalar(
                select(Organization.status).where(Organization.id == key.org_id,
                                                  Organization.account_id == key.account_id))
    if key is None:
        raise Unauthorized("Invalid API key")
    ok = await asyncio.to_thread(verify_secret, key.secret_hash, secret)
    if not ok:
        raise Unauthorized("Invalid API key")
    if key.status != "active" or (key.expires_at is not None and key.expires_at <= now_ms()):
        raise Unauthorized("The API key is not active")
    if key.owner_kind == "organization" and org_status != "active":
        raise Unauthorized("The API key's organization is not active")
    scopes = tuple(key.restrictions.get("scopes", []))
    return Principal(
        type="api_key",
        account_id=key.account_id,
        account_level=key.owner_kind == "account",
        scopes=scopes,
        key_id=key.id,
        org_id=key.org_id,
        issuer_id=key.issuer_id,
    )
