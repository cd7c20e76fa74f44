"""Clients of an issuer: create (secret shown once), list, update, delete, rotate the secret."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import and_, func, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.client.schemas import (
    ClientCreate,
    ClientSettings,
    ClientUpdate,
    consistency_error,
    settings_to_stored,
)
from app.core.auth import Principal
from app.core.crypto import generate_secret, hash_secret, secret_hint
from app.core.errors import ValidationFailed
from app.core.ids import new_id, now_ms
from app.core.pagination import PageParams, paginate
from app.core.rows import one_or_404
from app.events.service import record
from app.models.client import Client
from app.models.issuer import Issuer
from app.runtime.invalidation import publish

SECRET_BYTES = 32


def _bump(obj: Any) -> None:
    obj.updated_at = max(now_ms(), (obj.updated_at or obj.created_at) + 1)


def _check(confidential: bool, settings: ClientSettings) -> None:
    err = consistency_error(confidential, settings)
    if err:
        raise ValidationFailed(err[1], field=err[0])


async def _new_secret() -> tuple[str, str]:
    secret = generate_secret(SECRET_BYTES)
    # argon2id is deliberately slow: keep it off the event loop.
    return secret, await asyncio.to_thread(hash_secret, secret)


def _registration_unchanged(settings: ClientSettings, stored: str | None) -> None:
    """`settings.openid.registration` is the server's record of how a client was made."""
    if settings.openid.registration != stored:
        raise ValidationFailed("settings.openid.registration is set by dynamic registration only",
                               field="settings.openid.registration")


async def create_client(session: AsyncSession, issuer: Issuer, body: ClientCreate,
                        auth: Principal | dict[str, Any], *, registration: str | None = None
                        ) -> tuple[Client, str | None]:
    _check(body.confidential, body.settings)
    _registration_unchanged(body.settings, None)
    stored = settings_to_stored(body.settings)
    if registration is not None:
        stored["openid"]["registration"] = registration
    now = now_ms()
    client = Client(
        id=new_id("c"), account_id=issuer.account_id, issuer_id=issuer.id, name=body.name,
        description=body.description, logo_url=body.logo_url, type=body.type,
        confidential=body.confidential, settings=stored,
        metadata_=body.metadata or {}, status="active", status_at=now, created_at=now)
    secret = None
    if body.confidential:
        secret, client.secret_hash = await _new_secret()
        client.secret_hint = secret_hint(secret)
        client.secret_rotated_at = now
    session.add(client)
    await session.flush()
    await record(session, type="client.created", account_id=issuer.account_id, issuer_id=issuer.id,
                 client_id=client.id, subject={"type": "client", "id": client.id},
                 data={"name": client.name, "confidential": client.confidential,
                       "grant_types": client.settings["openid"]["grant_types"]}, auth=auth)
    return client, secret


async def get_client(session: AsyncSession, issuer: Issuer, client_id: str) -> Client:
    stmt = select(Client).where(Client.id == client_id, Client.issuer_id == issuer.id,
                                Client.account_id == issuer.account_id, Client.status != "deleted")
    return await one_or_404(session, stmt, "client")


async def list_clients(session: AsyncSession, issuer: Issuer, params: PageParams, *, q: str | None,
                       name: str | None, status: str | None, application_type: str | None,
                       readiness: str | None) -> tuple[list[Client], bool, str | None]:
    stmt = select(Client).where(Client.issuer_id == issuer.id, Client.account_id == issuer.account_id)
    stmt = stmt.where(Client.status == status) if status else stmt.where(Client.status != "deleted")
    if q:
        pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(or_(Client.name.ilike(pattern), Client.id == q))
    if name:
        stmt = stmt.where(Client.name == name)
    if application_type:
        stmt = stmt.where(Client.settings["openid"]["application_type"].astext == application_type)
    if readiness:
        # Readiness is derived from settings; filtering a page in Python would break the cursor,
        # so express it in SQL.
        grants = Client.settings["openid"]["grant_types"]
        uris = Client.settings["openid"]["redirect_uris"]
        needs = and_(grants.contains(["authorization_code"]),
                     func.coalesce(func.jsonb_array_length(uris), 0) == 0)
        if readiness == "inactive":
            stmt = stmt.where(Client.status != "active")
        elif readiness == "needs_redirect_uri":
            stmt = stmt.where(Client.status == "active", needs)
        elif readiness == "ready":
            stmt = stmt.where(Client.status == "active", not_(needs))
        else:
            return [], False, None
    return await paginate(session, stmt, Client.id, params)


async def update_client(session: AsyncSession, client: Client, body: ClientUpdate,
                        auth: Principal | dict[str, Any]) -> Client:
    changes = body.model_dump(exclude_unset=True)
    if body.settings is not None:
        _check(client.confidential, body.settings)
        stored = ((client.settings or {}).get("openid") or {}).get("registration")
        _registration_unchanged(body.settings, stored)
    for name, value in changes.items():
        if name == "metadata":
            client.metadata_ = value or {}
        elif name == "settings":
            if body.settings is not None:
                client.settings = settings_to_stored(body.settings)
        elif name in ("name", "type", "status") and value is None:
            continue
        elif name == "status":
            if value != client.status:
                client.status = value
                client.status_at = now_ms()
                client.status_by = auth.actor_id if isinstance(auth, Principal) else None
        else:
            setattr(client, name, value)
    _bump(client)
    await session.flush()
    await publish(session, "client", client.id)  # every replica's client cache
    await record(session, type="client.updated", account_id=client.account_id,
                 issuer_id=client.issuer_id, client_id=client.id,
                 subject={"type": "client", "id": client.id}, data={"changed": sorted(changes)},
                 auth=auth)
    return client


async def delete_client(session: AsyncSession, client: Client, auth: Principal | dict[str, Any]) -> None:
    """The row stays (events and tokens reference it) but the secret is really deleted."""
    client.status = "deleted"
    client.status_at = now_ms()
    client.secret_hash = None
    _bump(client)
    await session.flush()
    await publish(session, "client", client.id)  # every replica's client cache
    await record(session, type="client.deleted", account_id=client.account_id,
                 issuer_id=client.issuer_id, client_id=client.id,
                 subject={"type": "client", "id": client.id}, data={"name": client.name}, auth=auth)


async def rotate_secret(session: AsyncSession, client: Client, auth: Principal) -> str:
    if not client.confidential:
        raise ValidationFailed("A public client has no secret", field="confidential")
    secret, client.secret_hash = await _new_secret()
    client.secret_hint = secret_hint(secret)
    client.secret_rotated_at = now_ms()
    _bump(client)
    await session.flush()
    await publish(session, "client", client.id)  # every replica's client cache
    await record(session, type="client.secret.rotated", account_id=client.account_id,
                 issuer_id=client.issuer_id, client_id=client.id,
                 subject={"type": "client", "id": client.id}, data={},
                 auth=auth)
    return secret
