"""Organizations of an issuer: list, create, get, update, delete (SDK-CONTRACT §2.16)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import envelopes
from app.core.auth import Principal, scoped
from app.core.errors import ValidationFailed
from app.core.etags import if_match
from app.core.pagination import PageParams, page_params
from app.core.responses import Obj, Page
from app.core.session import db_session
from app.issuer.dependencies import get_issuer_in_account
from app.organization import service, sso
from app.organization.dns import resolver_for
from app.organization.schemas import (
    DomainAdd,
    OrganizationCreate,
    OrganizationListItem,
    OrganizationOut,
    OrganizationUpdate,
)

router = APIRouter(tags=["organizations"])

ORGS = "/accounts/{account_id}/issuers/{issuer_id}/organizations"
READ = scoped("issuers.organizations", "read")
WRITE = scoped("issuers.organizations", "write")


def _public(request: Request) -> str:
    return str(request.app.state.settings.resolved_public_url())


def sso_options(request: Request) -> dict[str, Any]:
    """What checking an SSO connection needs: the key that encrypts its secret, and whether its URLs
    may be private (AUTHPI_WEBHOOKS_ALLOW_PRIVATE)."""
    return {"server_key": request.app.state.secret_key,
            "allow_private": request.app.state.settings.webhooks_allow_private}


def parse_flag(name: str, value: str | None) -> bool | None:
    """The SDK types these filters `str`: accept exactly "true" / "false"."""
    if value is None:
        return None
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValidationFailed(f"{name} must be 'true' or 'false'", field=name)


class OrganizationFilters:
    def __init__(
        self,
        status: str | None = Query(None, max_length=32),
        sso_enabled: str | None = Query(None, max_length=8),
        sso_only: str | None = Query(None, max_length=8),
        mfa_required: str | None = Query(None, max_length=8),
        invitation_enabled: str | None = Query(None, max_length=8),
    ) -> None:
        self.values: dict[str, Any] = {
            "status": status,
            "sso_enabled": parse_flag("sso_enabled", sso_enabled),
            "sso_only": parse_flag("sso_only", sso_only),
            "mfa_required": parse_flag("mfa_required", mfa_required),
            "invitation_enabled": parse_flag("invitation_enabled", invitation_enabled),
        }


@router.get(ORGS, response_model=Page[OrganizationListItem])
async def list_organizations(
    account_id: str,
    issuer_id: str,
    request: Request,
    filters: OrganizationFilters = Depends(),
    params: PageParams = Depends(page_params),
    _: Principal = Depends(READ),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """The issuer's organizations, newest first."""
    await get_issuer_in_account(session, account_id, issuer_id)
    rows, has_more, cursor = await service.list_organizations(
        session, account_id=account_id, issuer_id=issuer_id, params=params, filters=filters.values)
    return envelopes.page([OrganizationListItem.of(o, _public(request)) for o in rows], has_more=has_more,
                          next_cursor=cursor)


@router.post(ORGS, status_code=201, response_model=Obj[OrganizationOut])
async def create_organization(
    account_id: str,
    issuer_id: str,
    body: OrganizationCreate,
    request: Request,
    principal: Principal = Depends(WRITE),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Create an organization (a tenant) in the issuer."""
    await get_issuer_in_account(session, account_id, issuer_id)
    org = await service.create_organization(session, account_id=account_id, issuer_id=issuer_id,
                                            body=body, auth=principal, **sso_options(request))
    return envelopes.created(OrganizationOut.of(org, _public(request)))


@router.get(ORGS + "/{org_id}", response_model=Obj[OrganizationOut])
async def get_organization(
    account_id: str,
    issuer_id: str,
    org_id: str,
    request: Request,
    _: Principal = Depends(READ),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """One organization."""
    org = await service.resolve_organization(session, account_id, issuer_id, org_id)
    return envelopes.obj(OrganizationOut.of(org, _public(request)))


@router.patch(ORGS + "/{org_id}", response_model=Obj[OrganizationOut])
async def update_organization(
    account_id: str,
    issuer_id: str,
    org_id: str,
    body: OrganizationUpdate,
    request: Request,
    principal: Principal = Depends(WRITE),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Change an organization; status moves between active and suspended."""
    org = if_match(request, await service.resolve_organization(session, account_id, issuer_id, org_id,
                                                               for_update=True))
    org = await service.update_organization(session, org, body, principal, **sso_options(request))
    return envelopes.obj(OrganizationOut.of(org, _public(request)))


@router.delete(ORGS + "/{org_id}", status_code=204)
async def delete_organization(
    account_id: str,
    issuer_id: str,
    org_id: str,
    request: Request,
    principal: Principal = Depends(WRITE),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> Response:
    """Delete an organization (soft: it is 404 everywhere afterwards)."""
    org = if_match(request, await service.resolve_organization(session, account_id, issuer_id, org_id,
                                                               for_update=True))
    await service.delete_organization(session, org, principal)
    return envelopes.no_content()


@router.post(ORGS + "/{org_id}/sso/domains", status_code=201, response_model=Obj[sso.DomainOut])
async def add_sso_domain(
    account_id: str,
    issuer_id: str,
    org_id: str,
    body: DomainAdd,
    request: Request,
    principal: Principal = Depends(WRITE),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Claim an email domain for SSO; prove it with the returned DNS TXT record."""
    org = if_match(request, await service.resolve_organization(session, account_id, issuer_id, org_id))
    row = await sso.add_domain(session, org, sso.normalize_domain(body.domain), principal)
    return envelopes.created(sso.DomainOut.of(row))


@router.delete(ORGS + "/{org_id}/sso/domains/{domain}", response_model=Obj[sso.DomainRemoved])
async def remove_sso_domain(
    account_id: str,
    issuer_id: str,
    org_id: str,
    domain: str,
    request: Request,
    principal: Principal = Depends(WRITE),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Release a claimed domain (answers an object, unlike other deletes: the SDK expects one)."""
    org = await service.resolve_organization(session, account_id, issuer_id, org_id)
    row = if_match(request, await sso.get_domain(session, org, domain, for_update=True))
    await sso.remove_domain(session, org, row, principal)
    return envelopes.obj(sso.DomainRemoved(domain=row.domain))


@router.post(ORGS + "/{org_id}/sso/domains/{domain}/verify", response_model=Obj[sso.DomainVerification])
async def verify_sso_domain(
    account_id: str,
    issuer_id: str,
    org_id: str,
    domain: str,
    request: Request,
    principal: Principal = Depends(WRITE),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Look up the domain's TXT record; `verified` false with an `error` when it is not there yet."""
    org = await service.resolve_organization(session, account_id, issuer_id, org_id)
    row = if_match(request, await sso.get_domain(session, org, domain, for_update=True))
    resolver = getattr(request.app.state, "txt_resolver", None) or resolver_for(
        request.app.state.settings.dns_nameservers)
    result = await sso.verify_domain(session, org, row, resolver, principal)
    return envelopes.obj(sso.DomainVerification(**result))


@router.post(ORGS + "/{org_id}/sso/rotate-secret", response_model=Obj[sso.SsoSecret])
async def rotate_sso_secret(
    account_id: str,
    issuer_id: str,
    org_id: str,
    request: Request,
    principal: Principal = Depends(WRITE),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """A new SSO connection secret, shown in this response only (no body)."""
    org = if_match(request, await service.resolve_organization(session, account_id, issuer_id, org_id,
                                                               for_update=True))
    secret = await sso.rotate_secret(session, org, principal)
    return envelopes.obj(sso.SsoSecret(secret=secret))
