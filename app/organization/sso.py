"""Organization SSO: claimed email domains proven by a DNS TXT record, and the connection secret.

The SSO configuration itself lives in `Organization.sso` (PATCH {O}); these are the actions.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, Self

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.auth import Principal
from app.core.crypto import constant_time_equals, generate_secret, hash_secret
from app.core.errors import Conflict, ValidationFailed
from app.core.ids import new_id, now_ms
from app.core.responses import ResponseModel, with_fields
from app.core.rows import one_or_404
from app.events.service import record
from app.models.organization import Organization
from app.models.organization_domain import OrganizationDomain
from app.organization.dns import DnsError
from app.organization.service import touch

TxtResolver = Callable[[str], Awaitable[list[str]]]

TXT_PREFIX = "_authpi-verification"
_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_DOMAIN = re.compile(rf"^(?:{_LABEL}\.)+[a-z][a-z0-9-]{{0,62}}$")


def normalize_domain(value: object) -> str:
    if not isinstance(value, str):
        raise ValidationFailed("domain must be a string", field="domain")
    domain = value.strip().lower().rstrip(".")
    if len(domain) > 253 or not _DOMAIN.match(domain):
        raise ValidationFailed("domain must be a DNS name like acme.com", field="domain")
    return domain


def txt_record_name(domain: str) -> str:
    return f"{TXT_PREFIX}.{domain}"


class DomainRemoved(ResponseModel):
    domain: str
    removed: bool = True


class DomainVerification(ResponseModel):
    verified: bool
    error: str | None = None


class SsoSecret(ResponseModel):
    """The organization's new SSO secret, shown this once."""

    secret: str


class DomainOut(ResponseModel):
    domain: str
    txt_record_name: str
    txt_record_value: str
    verified: bool
    verified_at: int | None
    created_at: int
    updated_at: int | None

    @classmethod
    def of(cls, row: OrganizationDomain) -> Self:
        return cls.model_validate(with_fields(row, txt_record_name=txt_record_name(row.domain),
                                              verified=row.verified_at is not None))



async def _event(session: AsyncSession, org: Organization, type: str, auth: Principal,
                 data: dict[str, Any]) -> None:
    await record(session, type=type, account_id=org.account_id, issuer_id=org.issuer_id,
                 org_id=org.id, subject={"type": "organization", "id": org.id}, data=data, auth=auth)


async def get_domain(session: AsyncSession, org: Organization, domain: str,
                     for_update: bool = False) -> OrganizationDomain:
    stmt = select(OrganizationDomain).where(
        OrganizationDomain.org_id == org.id, OrganizationDomain.account_id == org.account_id,
        OrganizationDomain.domain == domain.strip().lower().rstrip("."))
    return await one_or_404(session, stmt, "domain", for_update=for_update)


async def add_domain(session: AsyncSession, org: Organization, domain: str,
                     auth: Principal) -> OrganizationDomain:
    taken = await session.scalar(select(OrganizationDomain.org_id).where(
        OrganizationDomain.issuer_id == org.issuer_id, OrganizationDomain.domain == domain))
    if taken is not None:
        # Never say which organization holds it.
        raise Conflict("This domain is already claimed in this issuer")
    row = OrganizationDomain(id=new_id("dom"), account_id=org.account_id, issuer_id=org.issuer_id,
                             org_id=org.id, domain=domain,
                             txt_record_value=f"authpi-verification={secrets.token_urlsafe(24)}",
                             created_at=now_ms())
    session.add(row)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict("This domain is already claimed in this issuer") from exc
    await _event(session, org, "organization.sso.domain-created", auth, {"domain": domain})
    return row


async def verify_domain(session: AsyncSession, org: Organization, row: OrganizationDomain,
                        resolver: TxtResolver, auth: Principal) -> dict[str, Any]:
    if row.verified_at is not None:
        return {"verified": True}
    try:
        values = await resolver(txt_record_name(row.domain))
    except (DnsError, OSError) as exc:
        return {"verified": False, "error": f"dns_lookup_failed: {exc}"[:200]}
    if not any(constant_time_equals(v.strip(), row.txt_record_value) for v in values):
        return {"verified": False, "error": "txt_record_not_found"}
    row.verified_at = now_ms()
    touch(row)
    await session.flush()
    await _event(session, org, "organization.sso.domain-verified", auth, {"domain": row.domain})
    return {"verified": True}


async def remove_domain(session: AsyncSession, org: Organization, row: OrganizationDomain,
                        auth: Principal) -> None:
    await session.delete(row)
    await session.flush()
    await _event(session, org, "organization.sso.domain-deleted", auth, {"domain": row.domain})


async def rotate_secret(session: AsyncSession, org: Organization, auth: Principal) -> str:
    """A new SSO connection secret, shown once; only its argon2id hash is kept."""
    secret = generate_secret()
    org.sso_secret_hash = await asyncio.to_thread(hash_secret, secret)
    org.sso_secret_rotated_at = now_ms()
    touch(org)
    await session.flush()
    await _event(session, org, "organization.sso.updated", auth, {"secret_rotated": True})
    return secret
