"""Federated identities: an upstream subject bound to a user, per auth method or organization
connection, and the rules that decide when one may link to, or create, a user.

- An identity is found by (source, upstream subject), never by an email.
- It links to an existing user without asking only when a social method trusts verified emails
  (`settings.trust_verified_email: true`) and the upstream says `email_verified`, or when an
  organization's connection asserts an email on one of that organization's DNS-verified domains.
- An organization's connection never creates or links a user whose email is outside those domains.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.ids import new_id, now_ms
from app.events.service import record
from app.membership.schemas import MemberCreate
from app.membership.service import create_membership
from app.models.federated_identity import FederatedIdentity
from app.models.membership import Membership
from app.models.organization import Organization
from app.models.organization_domain import OrganizationDomain
from app.models.user import User
from app.user.schemas import UserCreate, normalize_username
from app.user.service import create_user

METHOD = "auth_method"
ORGANIZATION = "organization"


@dataclass
class Assertion:
    """What the upstream said about the user, after its token was checked."""

    subject: str
    email: str | None
    email_verified: bool
    name: str | None = None
    given_name: str | None = None
    family_name: str | None = None

    @property
    def domain(self) -> str | None:
        if not self.email or "@" not in self.email:
            return None
        return self.email.rsplit("@", 1)[1].strip().lower().rstrip(".")


def _auth(source_type: str, source_id: str, issuer_id: str) -> dict[str, Any]:
    return {"type": "federation", "source_type": source_type, "source_id": source_id, "issuer_id": issuer_id}


async def find_identity(session: AsyncSession, *, account_id: str, issuer_id: str, source_id: str,
                        subject: str) -> FederatedIdentity | None:
    return await session.scalar(select(FederatedIdentity).where(
        FederatedIdentity.account_id == account_id, FederatedIdentity.issuer_id == issuer_id,
        FederatedIdentity.source_id == source_id, FederatedIdentity.subject == subject))


async def active_user(session: AsyncSession, account_id: str, issuer_id: str, user_id: str) -> User | None:
    return await session.scalar(select(User).where(
        User.id == user_id, User.account_id == account_id, User.issuer_id == issuer_id,
        User.status == "active"))


async def user_by_email(session: AsyncSession, account_id: str, issuer_id: str, email: str) -> User | None:
    """The user whose username is this email (any status but deleted)."""
    return await session.scalar(select(User).where(
        User.account_id == account_id, User.issuer_id == issuer_id,
        User.username_normalized == normalize_username(email), User.status != "deleted"))


async def link(session: AsyncSession, user: User, *, source_type: str, source_id: str,
               assertion: Assertion, via: str) -> FederatedIdentity:
    """Bind the upstream identity to the user and record `user.sso.linked`."""
    row = FederatedIdentity(id=new_id("fid"), account_id=user.account_id, issuer_id=user.issuer_id,
                            user_id=user.id, source_type=source_type, source_id=source_id,
                            subject=assertion.subject, email=assertion.email, created_at=now_ms(),
                            last_used_at=now_ms())
    session.add(row)
    await session.flush()
    await record(session, type="user.sso.linked", account_id=user.account_id, issuer_id=user.issuer_id,
                 user_id=user.id, org_id=source_id if source_type == ORGANIZATION else None,
                 subject={"type": "user", "id": user.id},
                 data={"source_type": source_type, "source_id": source_id, "identity_id": row.id,
                       "via": via},
                 auth=_auth(source_type, source_id, user.issuer_id))
    return row


async def provision(session: AsyncSession, *, account_id: str, issuer_id: str, source_type: str,
                    source_id: str, assertion: Assertion, org: Organization | None) -> User:
    """A new user for a first sign-in (its email as username when the upstream vouches for it), with
    the organization's membership (default_member_scopes) for a connection; `user.sso.provisioned`."""
    auth = _auth(source_type, source_id, issuer_id)
    profile = {k: v for k, v in (("first_name", assertion.given_name), ("last_name", assertion.family_name),
                                 ("display_name", assertion.name)) if isinstance(v, str) and v}
    if assertion.email and (assertion.email_verified or org is not None):
        body = UserCreate(username_type="email", username=assertion.email, profile=profile)
    else:
        body = UserCreate(username_type="username", username=f"{source_id}-{assertion.subject}"[:64],
                          profile=profile)
    user = await create_user(session, account_id=account_id, issuer_id=issuer_id, body=body, auth=auth)
    if org is not None:
        await create_membership(session, org, MemberCreate(member_id=user.id), auth)
    await record(session, type="user.sso.provisioned", account_id=account_id, issuer_id=issuer_id,
                 user_id=user.id, org_id=org.id if org else None, subject={"type": "user", "id": user.id},
                 data={"source_type": source_type, "source_id": source_id}, auth=auth)
    await link(session, user, source_type=source_type, source_id=source_id, assertion=assertion,
               via="provisioned")
    return user


async def ensure_membership(session: AsyncSession, org: Organization, user: User) -> None:
    """A user an organization's connection signs in is a member of it (default scopes)."""
    existing = await session.scalar(select(Membership.id).where(
        Membership.org_id == org.id, Membership.member_id == user.id,
        Membership.account_id == org.account_id))
    if existing is None:
        await create_membership(session, org, MemberCreate(member_id=user.id),
                                _auth(ORGANIZATION, org.id, org.issuer_id))


async def verified_domains(session: AsyncSession, org: Organization) -> set[str]:
    rows = await session.scalars(select(OrganizationDomain.domain).where(
        OrganizationDomain.org_id == org.id, OrganizationDomain.account_id == org.account_id,
        OrganizationDomain.verified_at.is_not(None)))
    return set(rows.all())


def sso_enabled(org: Organization) -> bool:
    return org.status == "active" and (org.sso or {}).get("enabled") is True and \
        ((org.sso or {}).get("connection") or {}).get("type") == "oidc"


async def organization_for_domain(session: AsyncSession, *, account_id: str, issuer_id: str,
                                  domain: str) -> Organization | None:
    """The organization with SSO that verified this email domain (home-realm discovery)."""
    org = await session.scalar(select(Organization).join(
        OrganizationDomain, OrganizationDomain.org_id == Organization.id).where(
        OrganizationDomain.issuer_id == issuer_id, OrganizationDomain.account_id == account_id,
        OrganizationDomain.domain == domain.strip().lower().rstrip("."),
        OrganizationDomain.verified_at.is_not(None), Organization.account_id == account_id))
    return org if org is not None and sso_enabled(org) else None


async def sso_organization(session: AsyncSession, *, account_id: str, issuer_id: str,
                           org_id: str) -> Organization | None:
    org = await session.scalar(select(Organization).where(
        Organization.id == org_id, Organization.account_id == account_id,
        Organization.issuer_id == issuer_id))
    return org if org is not None and sso_enabled(org) else None


async def sso_only_organization(session: AsyncSession, user: User) -> Organization | None:
    """An organization with `sso_only` that this user belongs to, or whose verified domain holds the
    user's email: its connection is the only way in."""
    orgs = (await session.scalars(select(Organization).join(
        Membership, Membership.org_id == Organization.id).where(
        Membership.member_id == user.id, Membership.account_id == user.account_id,
        Organization.account_id == user.account_id).order_by(Organization.id))).all()
    if user.username_type == "email" and "@" in user.username:
        by_domain = await organization_for_domain(session, account_id=user.account_id,
                                                  issuer_id=user.issuer_id,
                                                  domain=user.username.rsplit("@", 1)[1])
        if by_domain is not None:
            orgs = [*orgs, by_domain]
    for org in orgs:
        if sso_enabled(org) and (org.sso or {}).get("sso_only") is True:
            return org
    return None
