"""Organizations of an issuer: the tenants that hold members, groups, invitations and keys."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.auth import Principal
from app.core.crypto import encrypt
from app.core.errors import ValidationFailed
from app.core.ids import new_id, now_ms
from app.core.pagination import PageParams, paginate
from app.core.rows import one_or_404
from app.events.service import record
from app.identity.providers import validate_sso
from app.issuer.dependencies import get_issuer_in_account
from app.models.base import Timestamps
from app.models.organization import Organization
from app.models.organization_domain import OrganizationDomain
from app.organization.schemas import PROFILE_FIELDS, OrganizationCreate, OrganizationUpdate
from app.runtime.invalidation import publish


def touch(row: Timestamps) -> None:
    """A new version strictly after the current one, so the ETag changes even within one ms."""
    row.updated_at = max(now_ms(), row.version + 1)


def subject(org: Organization) -> dict[str, Any]:
    return {"type": "organization", "id": org.id}


async def get_organization(session: AsyncSession, *, account_id: str, issuer_id: str, org_id: str,
                           for_update: bool = False) -> Organization:
    """The organization if it lives in this account and issuer and is not deleted; else 404."""
    stmt = select(Organization).where(
        Organization.id == org_id, Organization.account_id == account_id,
        Organization.issuer_id == issuer_id, Organization.status != "deleted")
    return await one_or_404(session, stmt, "organization", for_update=for_update)


async def resolve_organization(session: AsyncSession, account_id: str, issuer_id: str, org_id: str,
                               for_update: bool = False) -> Organization:
    """The organization of a `{I}/organizations/{org_id}/...` path: issuer and org both checked."""
    await get_issuer_in_account(session, account_id, issuer_id)
    return await get_organization(session, account_id=account_id, issuer_id=issuer_id,
                                  org_id=org_id, for_update=for_update)


def _apply(org: Organization, changes: dict[str, Any]) -> None:
    profile = dict(org.profile)
    for field, value in changes.items():
        if field in PROFILE_FIELDS:
            if value is None:
                profile.pop(field, None)
            else:
                profile[field] = value
        elif field == "metadata":
            org.metadata_ = value or {}
        elif field in ("default_member_scopes", "scopes"):
            setattr(org, field, value or [])
        elif field in ("security", "sso"):
            setattr(org, field, value or {})
        elif field == "invitation_enabled":
            org.invitation_enabled = True if value is None else value
        elif field == "name" and value is None:
            continue  # a name cannot be unset
        else:
            setattr(org, field, value)
    org.profile = profile


async def _check_sso(org: Organization, changes: dict[str, Any], server_key: str | None,
                     allow_private: bool) -> None:
    """Check a new `sso` (422 for a connection the server cannot run) and keep its client secret
    encrypted in its own column, never in the JSON."""
    if changes.get("sso") is None:
        return
    stored, secret = await validate_sso(changes["sso"], allow_private=allow_private,
                                        has_secret=org.sso_client_secret_encrypted is not None)
    if secret is not None:
        if server_key is None:
            raise ValidationFailed("the connection secret cannot be set here", field="sso.connection")
        org.sso_client_secret_encrypted = encrypt(server_key, secret.encode(), org.id.encode())
    changes["sso"] = stored


async def _sso_events(session: AsyncSession, org: Organization, before: dict[str, Any],
                      auth: Principal) -> None:
    after = org.sso or {}
    if after == before:
        return
    was, now = before.get("enabled") is True, after.get("enabled") is True
    kind = ("organization.sso.enabled" if now and not was else "organization.sso.disabled" if was and not now
            else "organization.sso.updated")
    connection = after.get("connection") or {}
    await record(session, type=kind, account_id=org.account_id, issuer_id=org.issuer_id, org_id=org.id,
                 subject=subject(org), auth=auth,
                 data={"enabled": now, "sso_only": after.get("sso_only") is True,
                       "connection_type": connection.get("type")})


async def create_organization(session: AsyncSession, *, account_id: str, issuer_id: str,
                              body: OrganizationCreate, auth: Principal, server_key: str | None = None,
                              allow_private: bool = False) -> Organization:
    org = Organization(id=new_id("org"), account_id=account_id, issuer_id=issuer_id,
                       status="active", org_type=body.org_type, created_at=now_ms(),
                       invitation_enabled=True, profile={}, metadata_={}, scopes=[],
                       default_member_scopes=[], security={}, sso={})
    changes = body.model_dump(exclude_unset=True, exclude={"org_type"})
    await _check_sso(org, changes, server_key, allow_private)
    _apply(org, changes)
    session.add(org)
    await session.flush()
    await record(session, type="organization.created", account_id=account_id, issuer_id=issuer_id,
                 org_id=org.id, subject=subject(org), data={"name": org.name}, auth=auth)
    await _sso_events(session, org, {}, auth)
    return org


async def update_organization(session: AsyncSession, org: Organization, body: OrganizationUpdate,
                              auth: Principal, server_key: str | None = None,
                              allow_private: bool = False) -> Organization:
    changes = body.model_dump(exclude_unset=True)
    new_status = changes.pop("status", None)
    reason = changes.pop("status_reason", None)
    old_scopes = list(org.scopes)
    old_sso = dict(org.sso or {})
    await _check_sso(org, changes, server_key, allow_private)
    _apply(org, changes)
    status_changed = org.apply_status(new_status, reason, "status_reason" in body.model_fields_set,
                                      auth.actor_id)
    touch(org)
    await session.flush()
    common = {"account_id": org.account_id, "issuer_id": org.issuer_id, "org_id": org.id,
              "subject": subject(org), "auth": auth}
    if changes or (not status_changed and "status_reason" in body.model_fields_set):
        await record(session, type="organization.updated", data={"changed": sorted(changes)}, **common)
    if status_changed:
        event = "organization.suspended" if new_status == "suspended" else "organization.reactivated"
        await record(session, type=event, data={"status": new_status, "reason": reason}, **common)
    await _sso_events(session, org, old_sso, auth)
    if status_changed or ("scopes" in changes and list(org.scopes) != old_scopes):
        # Organization keys' cached verifications carry the org's status and scopes.
        await publish(session, "org", org.id)
    return org


async def delete_organization(session: AsyncSession, org: Organization, auth: Principal) -> None:
    # Its SSO domains are released, so another organization may claim them.
    await session.execute(delete(OrganizationDomain).where(
        OrganizationDomain.org_id == org.id, OrganizationDomain.account_id == org.account_id))
    org.status = "deleted"
    org.status_at = now_ms()
    org.status_by = auth.actor_id
    touch(org)
    await session.flush()
    await record(session, type="organization.deleted", account_id=org.account_id,
                 issuer_id=org.issuer_id, org_id=org.id, subject=subject(org), data={}, auth=auth)
    await publish(session, "org", org.id)


def _flag(column: Any, key: str) -> Any:
    # JSON containment: only a real `true` counts, and a non-boolean stored value is never a 500.
    return column.contains({key: True})


async def list_organizations(session: AsyncSession, *, account_id: str, issuer_id: str,
                             params: PageParams, filters: dict[str, Any]
                             ) -> tuple[list[Organization], bool, str | None]:
    stmt: Select[Any] = select(Organization).where(
        Organization.account_id == account_id, Organization.issuer_id == issuer_id,
        Organization.status != "deleted")
    if filters.get("status"):
        stmt = stmt.where(Organization.status == filters["status"])
    flags = {
        "sso_enabled": _flag(Organization.sso, "enabled"),
        "sso_only": _flag(Organization.sso, "sso_only"),
        "mfa_required": _flag(Organization.security, "mfa_required"),
        "invitation_enabled": Organization.invitation_enabled,
    }
    for name, column in flags.items():
        value = filters.get(name)
        if value is not None:
            stmt = stmt.where(column.is_(value))
    return await paginate(session, stmt, Organization.id, params)
