"""Auth methods: how an issuer's end users may sign in. Mutations record `issuer.auth-method.*`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth_method.schemas import (
    PROVIDER_TYPES,
    SECRET_SETTING,
    SINGLETON_TYPES,
    AuthMethodCreate,
    AuthMethodUpdate,
)
from app.core.auth import Principal
from app.core.crypto import encrypt
from app.core.errors import Conflict, ValidationFailed
from app.core.ids import new_id, now_ms
from app.core.rows import one_or_404
from app.events.service import record
from app.models.auth_method import IssuerAuthMethod
from app.models.issuer import Issuer

MAX_METHODS_PER_ISSUER = 50


def _touch(row: IssuerAuthMethod) -> None:
    row.updated_at = max(now_ms(), row.version + 1)


async def _event(session: AsyncSession, m: IssuerAuthMethod, type: str, auth: Principal,
                 data: dict[str, Any]) -> None:
    await record(session, type=type, account_id=m.account_id, issuer_id=m.issuer_id,
                 subject={"type": "auth_method", "id": m.id}, data=data, auth=auth)


def _set_settings(m: IssuerAuthMethod, settings: dict[str, Any], server_key: str) -> None:
    """Store settings; an upstream IdP's client secret goes to its own encrypted column."""
    settings = dict(settings)
    secret = settings.pop(SECRET_SETTING, None)
    settings.pop(f"{SECRET_SETTING}_set", None)  # an echoed response field, not input
    if secret is not None:
        if m.type not in PROVIDER_TYPES:
            raise ValidationFailed(f"{SECRET_SETTING} is only for upstream identity providers",
                                   field=f"settings.{SECRET_SETTING}")
        if not isinstance(secret, str) or not 1 <= len(secret) <= 1024:
            raise ValidationFailed(f"{SECRET_SETTING} must be a string of 1-1024 characters",
                                   field=f"settings.{SECRET_SETTING}")
        m.secret_encrypted = encrypt(server_key, secret.encode(), m.id.encode())
    m.settings = settings


async def get_method(session: AsyncSession, *, account_id: str, issuer_id: str, method_id: str,
                     for_update: bool = False) -> IssuerAuthMethod:
    stmt = select(IssuerAuthMethod).where(
        IssuerAuthMethod.id == method_id, IssuerAuthMethod.account_id == account_id,
        IssuerAuthMethod.issuer_id == issuer_id)
    return await one_or_404(session, stmt, "auth method", for_update=for_update)


async def list_methods(session: AsyncSession, *, account_id: str, issuer_id: str) -> list[IssuerAuthMethod]:
    rows = await session.scalars(select(IssuerAuthMethod).where(
        IssuerAuthMethod.account_id == account_id, IssuerAuthMethod.issuer_id == issuer_id
    ).order_by(IssuerAuthMethod.id))
    return list(rows)


async def create_method(session: AsyncSession, issuer: Issuer, body: AuthMethodCreate, auth: Principal,
                        server_key: str) -> IssuerAuthMethod:
    # Lock the issuer row: concurrent creates must not both pass the singleton and cap checks.
    await session.execute(select(Issuer.id).where(Issuer.id == issuer.id).with_for_update())
    existing = await list_methods(session, account_id=issuer.account_id, issuer_id=issuer.id)
    if len(existing) >= MAX_METHODS_PER_ISSUER:
        raise Conflict(f"An issuer has at most {MAX_METHODS_PER_ISSUER} auth methods")
    if body.type in SINGLETON_TYPES and any(m.type == body.type for m in existing):
        raise Conflict(f"This issuer already has a {body.type} auth method")
    m = IssuerAuthMethod(id=new_id("am"), account_id=issuer.account_id, issuer_id=issuer.id,
                         type=body.type, name=body.name, enabled=body.enabled,
                         metadata_=body.metadata or {}, created_at=now_ms())
    _set_settings(m, body.settings or {}, server_key)
    session.add(m)
    await session.flush()
    await _event(session, m, "issuer.auth-method.created", auth, {"type": m.type, "enabled": m.enabled})
    return m


async def update_method(session: AsyncSession, m: IssuerAuthMethod, body: AuthMethodUpdate,
                        auth: Principal, server_key: str) -> IssuerAuthMethod:
    changes = body.model_dump(exclude_unset=True)
    for field, value in changes.items():
        if field == "settings":
            _set_settings(m, value or {}, server_key)
        elif field == "metadata":
            m.metadata_ = value or {}
        elif field == "enabled":
            m.enabled = True if value is None else value
        else:
            setattr(m, field, value)
    _touch(m)
    await session.flush()
    await _event(session, m, "issuer.auth-method.updated", auth,
                 {"type": m.type, "changed": sorted(changes), "enabled": m.enabled})
    return m


async def delete_method(session: AsyncSession, m: IssuerAuthMethod, auth: Principal) -> None:
    await session.delete(m)
    await session.flush()
    await _event(session, m, "issuer.auth-method.deleted", auth, {"type": m.type})
