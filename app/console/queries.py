"""Read-only lookups the console shows beside a user (tenant-scoped through the user row)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.pagination import PageParams
from app.group.service import list_groups
from app.invitation.service import list_invitations
from app.models.oidc import LoginSession
from app.models.organization import Organization
from app.models.organization_domain import OrganizationDomain
from app.models.trusted_device import TrustedDevice
from app.models.user import User
from app.models.user_verifier import UserVerifier


async def user_extras(session: AsyncSession, user: User) -> dict[str, Any]:
    """The user's verifiers, login sessions and trusted devices (tenant-scoped through the user)."""
    where = {"account_id": user.account_id, "user_id": user.id}
    verifiers = (await session.scalars(select(UserVerifier).filter_by(**where).limit(50))).all()
    sessions = (
        await session.scalars(
            select(LoginSession).filter_by(**where).order_by(LoginSession.id.desc()).limit(50)
        )
    ).all()
    devices = (await session.scalars(select(TrustedDevice).filter_by(**where).limit(50))).all()
    return {"verifiers": verifiers, "sessions": sessions, "devices": devices}


async def org_extras(session: AsyncSession, org: Organization) -> dict[str, Any]:
    """Groups, invitations and SSO domains of an organization, for its console page."""

    page = PageParams(limit=100, after_id=None)
    groups, _, _ = await list_groups(session, org, page)
    invitations, _, _ = await list_invitations(session, org, page, status=None)
    domains = (
        await session.scalars(
            select(OrganizationDomain)
            .where(OrganizationDomain.org_id == org.id, OrganizationDomain.account_id == org.account_id)
            .order_by(OrganizationDomain.domain)
        )
    ).all()
    return {"groups": groups, "invitations": invitations, "domains": domains}
