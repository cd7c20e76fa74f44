"""API keys of accounts and organizations: creation (the secret is shown once), lifecycle, lookups.

Every change calls `app.runtime.invalidation.publish` in its transaction, so each process's verified-key cache
drops the key when (and only when) the change commits.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, delete, func, or_, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from app.api_key.schemas import CreateApiKey, Restrictions, RotateApiKey, StatusChange, UpdateApiKey
from app.core.auth import Principal
from app.core.crypto import generate_secret, hash_secret, secret_hint
from app.core.errors import Conflict, ValidationFailed
from app.core.ids import new_id, now_ms
from app.core.pagination import PageParams, paginate
from app.core.rows import one_or_404
from app.core.scopes import within
from app.events.service import record
from app.models.api_key import ApiKey
from app.models.organization import Organization
from app.runtime.invalidation import publish

SECRET_PREFIX = "sk_"
EXPIRING_SOON_MS = 7 * 24 * 3600 * 1000
STATUS_FILTERS = ("active", "blocked", "revoked", "expired")
READINESS_FILTERS = ("ready", "expiring", "unusable")


def new_secret() -> str:
    return SECRET_PREFIX + generate_secret(32)


def _touch(key: ApiKey) -> None:
    """A new version strictly after the current one, so the ETag changes even within one ms."""
    key.updated_at = max(now_ms(), key.version + 1)


def _subject(key: ApiKey) -> dict[str, Any]:
    return {"type": "api_key", "id": key.id, "org_id": key.org_id, "issuer_id": key.issuer_id}


async def _record(session: AsyncSession, key: ApiKey, type: str, data: dict[str, Any],
                  auth: Principal | dict[str, Any] | None) -> None:
    org = key.owner_kind == "organization"
    await record(session, type=type, account_id=key.account_id,
                 issuer_id=key.issuer_id if org else None, org_id=key.org_id if org else None,
                 subject=_subject(key), data=data, auth=auth)


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
    secret: str | None = None,
) -> tuple[ApiKey, str]:
    """Create a key and its `api-key.created` event; returns the key and its one-time secret."""
    secret = secret or new_secret()
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
    await _record(session, key, "api-key.created",
                  {"name": name, "owner": owner_kind, "scopes": restrictions.get("scopes", [])}, auth)
    # Drops a "no such key" answer a cache may hold for this id.
    await publish(session, "key", key.id)
    return key, secret


def _restrictions(value: Restrictions) -> dict[str, Any]:
    return value.model_dump(exclude_none=True)


def check_account_key_scopes(scopes: list[str], auth: Principal) -> None:
    """An account key may not be given more than the credential creating it holds."""
    outside = within(scopes, auth.scopes)
    if outside:
        raise ValidationFailed(f"Scopes beyond the caller's own: {', '.join(outside[:5])}",
                               field="restrictions.scopes", code="scope_not_allowed")


def check_org_key_scopes(scopes: list[str], org: Organization) -> None:
    """An organization key's scopes must lie within what the organization may grant."""
    granted = list(org.scopes or [])
    if not granted:
        return
    outside = within(scopes, granted)
    if outside:
        raise ValidationFailed(f"Scopes the organization may not grant: {', '.join(outside[:5])}",
                               field="restrictions.scopes", code="scope_not_allowed")


async def create_account_key(session: AsyncSession, *, account_id: str, account_org_id: str,
                             issuer_id: str, body: CreateApiKey, auth: Principal) -> tuple[ApiKey, str]:
    restrictions = _restrictions(body.restrictions)
    check_account_key_scopes(restrictions.get("scopes", []), auth)
    return await create_api_key(
        session, account_id=account_id, owner_kind="account", issuer_id=issuer_id,
        org_id=account_org_id, name=body.name, restrictions=restrictions, auth=auth,
        description=body.description, tags=body.tags, expires_at=body.expires_at,
        metadata=body.metadata, key_type=body.type, secret=body.secret)


async def create_org_key(session: AsyncSession, *, org: Organization, body: CreateApiKey, auth: Principal
                         ) -> tuple[ApiKey, str]:
    if org.status != "active":
        raise Conflict("The organization is not active: it cannot be given new keys")
    restrictions = _restrictions(body.restrictions)
    check_org_key_scopes(restrictions.get("scopes", []), org)
    return await create_api_key(
        session, account_id=org.account_id, owner_kind="organization", issuer_id=org.issuer_id,
        org_id=org.id, name=body.name, restrictions=restrictions, auth=auth,
        description=body.description, tags=body.tags, expires_at=body.expires_at,
        metadata=body.metadata, key_type=body.type, secret=body.secret)


async def get_key(session: AsyncSession, *, account_id: str, key_id: str, for_update: bool = False
                  ) -> ApiKey:
    """A key of this account (account or organization key); another account's id is a 404."""
    stmt = select(ApiKey).where(ApiKey.id == key_id, ApiKey.account_id == account_id)
    return await one_or_404(session, stmt, "API key", for_update=for_update)


async def _owning_org(session: AsyncSession, key: ApiKey) -> Organization | None:
    if key.owner_kind != "organization":
        return None
    return await session.scalar(select(Organization).where(
        Organization.id == key.org_id, Organization.account_id == key.account_id,
        Organization.issuer_id == key.issuer_id))


@dataclass(frozen=True)
class KeyFilters:
    q: str | None = None
    status: str | None = None
    access: str | None = None
    readiness: str | None = None

    def validate(self) -> None:
        if self.status is not None and self.status not in STATUS_FILTERS:
            raise ValidationFailed(f"status must be one of {', '.join(STATUS_FILTERS)}", field="status")
        if self.readiness is not None and self.readiness not in READINESS_FILTERS:
            raise ValidationFailed(f"readiness must be one of {', '.join(READINESS_FILTERS)}",
                                   field="readiness")

    def apply(self, stmt: Select[Any]) -> Select[Any]:
        now = now_ms()
        not_expired = or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now)
        if self.q:
            pattern = "%" + self.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            stmt = stmt.where(or_(ApiKey.name.ilike(pattern), ApiKey.description.ilike(pattern),
                                  ApiKey.id == self.q))
        if self.status == "expired":
            stmt = stmt.where(ApiKey.status == "active", ApiKey.expires_at <= now)
        elif self.status == "active":
            stmt = stmt.where(ApiKey.status == "active", not_expired)
        elif self.status:
            stmt = stmt.where(ApiKey.status == self.status)
        if self.access:
            # Keys granted exactly this scope (e.g. access=invoices:read).
            stmt = stmt.where(ApiKey.restrictions["scopes"].op("@>")(
                func.cast(func.jsonb_build_array(self.access), JSONB)))
        if self.readiness == "ready":
            stmt = stmt.where(ApiKey.status == "active", not_expired)
        elif self.readiness == "expiring":
            stmt = stmt.where(ApiKey.status == "active", ApiKey.expires_at > now,
                              ApiKey.expires_at <= now + EXPIRING_SOON_MS)
        elif self.readiness == "unusable":
            stmt = stmt.where(or_(ApiKey.status != "active", ApiKey.expires_at <= now))
        return stmt


async def list_keys(session: AsyncSession, *, account_id: str, filters: KeyFilters, params: PageParams,
                    owner_kind: str, org_id: str | None = None, issuer_id: str | None = None
                    ) -> tuple[list[ApiKey], bool, str | None]:
    stmt = select(ApiKey).where(ApiKey.account_id == account_id, ApiKey.owner_kind == owner_kind)
    if org_id is not None:
        stmt = stmt.where(ApiKey.org_id == org_id)
    if issuer_id is not None:
        stmt = stmt.where(ApiKey.issuer_id == issuer_id)
    return await paginate(session, filters.apply(stmt), ApiKey.id, params)


def _ensure_not_revoked(key: ApiKey) -> None:
    if key.status == "revoked":
        raise Conflict("The API key is revoked; revocation is final")


def _set_status(key: ApiKey, status: str, reason: str | None, by: str | None, auth: Principal) -> None:
    key.status = status
    key.status_at = now_ms()
    key.status_reason = reason
    key.status_by = by or auth.actor_id


async def update_key(session: AsyncSession, key: ApiKey, body: UpdateApiKey, auth: Principal) -> ApiKey:
    changes = body.model_dump(exclude_unset=True)
    new_status = changes.pop("status", None)
    reason = changes.pop("status_reason", None)
    by = changes.pop("status_by", None)
    if changes or new_status is not None:
        _ensure_not_revoked(key)
    if "restrictions" in changes:
        restrictions = _restrictions(body.restrictions) if body.restrictions is not None else {}
        scopes = restrictions.get("scopes", [])
        if key.owner_kind == "organization":
            org = await _owning_org(session, key)
            if org is not None:
                check_org_key_scopes(scopes, org)
        else:
            check_account_key_scopes(scopes, auth)
        key.restrictions = restrictions
    for field in ("name", "description", "expires_at"):
        if field in changes:
            if field == "name" and changes[field] is None:
                raise ValidationFailed("name cannot be null", field="name")
            setattr(key, field, changes[field])
    if "tags" in changes:
        key.tags = changes["tags"] or []
    if "metadata" in changes:
        key.metadata_ = changes["metadata"] or {}
    status_event = None
    if new_status is not None and new_status != key.status:
        status_event = {"active": "api-key.unblocked", "blocked": "api-key.blocked",
                        "revoked": "api-key.revoked"}[new_status]
        _set_status(key, new_status, reason, by, auth)
    elif "status_reason" in body.model_fields_set:
        key.status_reason = reason
    _touch(key)
    await session.flush()
    if changes or status_event is None:
        await _record(session, key, "api-key.updated", {"changed": sorted(changes)}, auth)
    if status_event is not None:
        await _record(session, key, status_event, {"status": key.status, "reason": reason}, auth)
    await publish(session, "key", key.id)
    return key


async def block_key(session: AsyncSession, key: ApiKey, body: StatusChange | None, auth: Principal
                    ) -> ApiKey:
    _ensure_not_revoked(key)
    body = body or StatusChange()
    if key.status != "blocked":
        _set_status(key, "blocked", body.status_reason, body.status_by, auth)
        _touch(key)
        await session.flush()
        await _record(session, key, "api-key.blocked", {"reason": body.status_reason}, auth)
        await publish(session, "key", key.id)
    return key


async def unblock_key(session: AsyncSession, key: ApiKey, auth: Principal) -> ApiKey:
    _ensure_not_revoked(key)
    if key.status == "blocked":
        _set_status(key, "active", None, None, auth)
        _touch(key)
        await session.flush()
        await _record(session, key, "api-key.unblocked", {}, auth)
        await publish(session, "key", key.id)
    return key


async def revoke_key(session: AsyncSession, key: ApiKey, body: StatusChange | None, auth: Principal
                     ) -> ApiKey:
    body = body or StatusChange()
    if key.status != "revoked":
        _set_status(key, "revoked", body.status_reason, body.status_by, auth)
        # A revoked key never verifies again: its rotation grace ends with it.
        key.previous_secret_hash = None
        key.previous_secret_expires_at = None
        _touch(key)
        await session.flush()
        await _record(session, key, "api-key.revoked", {"reason": body.status_reason}, auth)
        await publish(session, "key", key.id)
    return key


async def rotate_key(session: AsyncSession, key: ApiKey, body: RotateApiKey | None, auth: Principal
                     ) -> tuple[ApiKey, str]:
    """A new secret, returned once. With `grace_period_seconds` > 0 the previous secret keeps
    working until then (for rolling a fleet); by default it stops at once."""
    _ensure_not_revoked(key)
    body = body or RotateApiKey()
    secret = new_secret()
    new_hash = await asyncio.to_thread(hash_secret, secret)
    now = now_ms()
    if body.grace_period_seconds > 0:
        key.previous_secret_hash = key.secret_hash
        key.previous_secret_expires_at = now + body.grace_period_seconds * 1000
    else:
        key.previous_secret_hash = None
        key.previous_secret_expires_at = None
    key.secret_hash = new_hash
    key.secret_hint = secret_hint(secret)
    key.last_rotated_at = now
    _touch(key)
    await session.flush()
    await _record(session, key, "api-key.rotated",
                  {"grace_period_seconds": body.grace_period_seconds}, auth)
    await publish(session, "key", key.id)
    return key, secret


async def delete_key(session: AsyncSession, key: ApiKey, auth: Principal) -> None:
    """A real delete: the secret's hash goes with the row."""
    await _record(session, key, "api-key.deleted", {"name": key.name}, auth)
    await session.execute(delete(ApiKey).where(ApiKey.id == key.id, ApiKey.account_id == key.account_id))
    await publish(session, "key", key.id)
