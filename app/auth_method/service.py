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
from app.identity import providers
from app.models.auth_method import IssuerAuthMethod
from app.models.issuer import Issuer

MAX_METHODS_PER_ISSUER = 50


def _touch(row: IssuerAuthMethod) -> None:
    row.updated_at = max(now_ms(), row.version + 1)


async def _event(session: AsyncSession, m: IssuerAuthMethod, type: str, auth: Principal,
                 data: dict[str, Any]) -> None:
    await record(session, type=type, account_id=m.account_id, issuer_id=m.issuer_id,
                 subject={"type": "auth_method", "id": m.id}, data=data, auth=auth)


async def _set_settings(m: IssuerAuthMethod, settings: dict[str, Any], server_key: str, *,
                        allow_private: bool) -> None:
    """Store settings; an upstream IdP's client secret goes to its own encrypted column. An upstream
    IdP's settings are checked (and one the server cannot run is refused while enabled)."""
    settings = dict(settings)
    if m.type in PROVIDER_TYPES:
        has_secret = m.secret_encrypted is not None or isinstance(settings.get(SECRET_SETTING), str)
        checked = await providers.validate(m.type, settings, enabled=m.enabled,
                                           allow_private=allow_private, has_secret=has_secret)
        settings = {**checked,
                    **({SECRET_SETTING: settings[SECRET_SETTING]} if SECRET_SETTING in settings else {})}
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
                        server_key: str, *, allow_private: bool = False) -> IssuerAuthMethod:
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
    await _set_settings(m, body.settings or {}, server_key, allow_private=allow_private)
    session.add(m)
    await session.flush()
    await _event(session, m, "issuer.auth-method.created", auth, {"type": m.type, "enabled": m.enabled})
    return m


async def update_method(session: AsyncSession, m: IssuerAuthMethod, body: AuthMethodUpdate,
                        auth: Principal, server_key: str, *, allow_private: bool = False) -> IssuerAuthMethod:
    changes = body.model_dump(exclude_unset=True)
    for field, value in changes.items():
        if field == "settings":
            continue
        elif field == "metadata":
            m.metadata_ = value or {}
        elif field == "enabled":
            m.enabled = True if value is None else value
        else:
            setattr(m, field, value)
    if "settings" in changes or (m.type in PROVIDER_TYPES and "enabled" in changes):
        # Settings are checked against the enabled state they will have (enabling an upstream
        # checks the settings it already has).
        await _set_settings(m, changes.get("settings") or ({} if "settings" in changes else m.settings),
                            server_key, allow_private=allow_private)
    _touch(m)
    await session.flush()
    await _event(session, m, "issuer.auth-method.updated", auth,
                 {"type": m.type, "changed": sorted(changes), "enabled": m.enabled})
    return m


async def delete_method(session: AsyncSession, m: IssuerAuthMethod, auth: Principal) -> None:
    await session.delete(m)
    await session.flush()
    await _event(session, m, "issuer.auth-method.deleted", auth, {"type": m.type})
