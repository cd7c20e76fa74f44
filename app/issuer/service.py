"""Issuers: create (with its first signing keys, in the same transaction), list, update, delete."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.auth import Principal
from app.core.ids import new_id, now_ms
from app.core.pagination import PageParams, paginate
from app.events.service import record
from app.issuer.schemas import IssuerCreate, IssuerUpdate
from app.models.auth_method import IssuerAuthMethod
from app.models.client import Client
from app.models.issuer import Issuer
from app.runtime.invalidation import publish
from app.signing_key.service import create_issuer_keys


def _bump(obj: Any) -> None:
    obj.updated_at = max(now_ms(), (obj.updated_at or obj.created_at) + 1)


async def create_issuer(session: AsyncSession, *, account_id: str, body: IssuerCreate, server_key: str,
                        auth: Principal) -> Issuer:
    now = now_ms()
    issuer = Issuer(
        id=new_id("i"), account_id=account_id, name=body.name, description=body.description,
        links=body.links or {}, available_scopes=body.available_scopes or [],
        settings=body.settings or {"access": {"mode": "public"}}, metadata_=body.metadata or {},
        status=body.status or "active", status_at=now, created_at=now)
    session.add(issuer)
    await session.flush()
    keys = await create_issuer_keys(session, server_key, issuer)
    await session.flush()
    await record(session, type="issuer.created", account_id=account_id, issuer_id=issuer.id,
                 subject={"type": "issuer", "id": issuer.id},
                 data={"name": issuer.name, "signing_keys": [{"kid": k.id, "alg": k.alg} for k in keys]},
                 auth=auth)
    return issuer


def _active_clients_subquery() -> Any:
    return (select(func.count(Client.id))
            .where(Client.issuer_id == Issuer.id, Client.account_id == Issuer.account_id,
                   Client.status == "active")
            .correlate(Issuer).scalar_subquery())


async def list_issuers(session: AsyncSession, *, account_id: str, params: PageParams, q: str | None,
                       status: str | None, access_mode: str | None, readiness: str | None,
                       only: tuple[str, ...] | None = None
                       ) -> tuple[list[tuple[Issuer, int, tuple[int, int]]], bool, str | None]:
    """Issuers with their active client count and (auth methods, enabled auth methods); `only`:
    these issuers (an issuer-limited key's), None: all of the account's."""
    active_clients = _active_clients_subquery()
    stmt = select(Issuer).where(Issuer.account_id == account_id)
    if only is not None:
        stmt = stmt.where(Issuer.id.in_(only))
    stmt = stmt.where(Issuer.status == status) if status else stmt.where(Issuer.status != "deleted")
    if q:
        pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(or_(Issuer.name.ilike(pattern), Issuer.description.ilike(pattern),
                              Issuer.id == q))
    if access_mode:
        mode = func.coalesce(Issuer.settings["access"]["mode"].astext, "public")
        stmt = stmt.where(mode == access_mode)
    if readiness == "inactive":
        stmt = stmt.where(Issuer.status != "active")
    elif readiness == "ready":
        stmt = stmt.where(Issuer.status == "active", active_clients > 0)
    elif readiness == "needs_client":
        stmt = stmt.where(Issuer.status == "active", active_clients == 0)
    elif readiness:
        return [], False, None
    rows, has_more, cursor = await paginate(session, stmt, Issuer.id, params)
    counts: dict[str, int] = {}
    if rows:
        result = await session.execute(
            select(Client.issuer_id, func.count(Client.id))
            .where(Client.account_id == account_id, Client.issuer_id.in_([r.id for r in rows]),
                   Client.status == "active")
            .group_by(Client.issuer_id))
        counts = {issuer_id: n for issuer_id, n in result.all()}
        methods = {
            issuer_id: (int(total), int(enabled))
            for issuer_id, total, enabled in (await session.execute(
                select(IssuerAuthMethod.issuer_id, func.count(IssuerAuthMethod.id),
                       func.count(IssuerAuthMethod.id).filter(IssuerAuthMethod.enabled.is_(True)))
                .where(IssuerAuthMethod.account_id == account_id,
                       IssuerAuthMethod.issuer_id.in_([r.id for r in rows]))
                .group_by(IssuerAuthMethod.issuer_id))).all()}
    else:
        methods = {}
    return ([(r, counts.get(r.id, 0), methods.get(r.id, (0, 0))) for r in rows], has_more, cursor)


async def update_issuer(session: AsyncSession, issuer: Issuer, body: IssuerUpdate, auth: Principal
                        ) -> Issuer:
    changes = body.model_dump(exclude_unset=True)
    for name, value in changes.items():
        if name == "metadata":
            issuer.metadata_ = value or {}
        elif name in ("links", "settings"):
            setattr(issuer, name, value or {})
        elif name == "available_scopes":
            issuer.available_scopes = value or []
        elif name in ("name", "status") and value is None:
            continue
        elif name == "status":
            if value != issuer.status:
                issuer.status = value
                issuer.status_at = now_ms()
        else:
            setattr(issuer, name, value)
    _bump(issuer)
    await session.flush()
    # Its key set, discovery document, clients and its organizations' keys are cached by every
    # replica: they reload when this commits.
    await publish(session, "issuer", issuer.id)
    await record(session, type="issuer.updated", account_id=issuer.account_id, issuer_id=issuer.id,
                 subject={"type": "issuer", "id": issuer.id}, data={"changed": sorted(changes)},
                 auth=auth)
    return issuer


async def delete_issuer(session: AsyncSession, issuer: Issuer, auth: Principal) -> None:
    """Soft delete: the issuer stops serving at once and answers 404 from then on."""
    issuer.status = "deleted"
    issuer.status_at = now_ms()
    await publish(session, "issuer", issuer.id)
    _bump(issuer)
    await session.flush()
    await record(session, type="issuer.deleted", account_id=issuer.account_id, issuer_id=issuer.id,
                 subject={"type": "issuer", "id": issuer.id}, data={"name": issuer.name}, auth=auth)
