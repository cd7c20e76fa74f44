"""Account domains: `{A}/domains` (SDK-CONTRACT §2.8). Every action answers with the whole Account."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.account import service as accounts
from app.account.schemas import AccountDomain, AccountOut
from app.core import envelopes
from app.core.auth import Principal, scoped
from app.core.etags import if_match
from app.core.responses import Obj, Page
from app.core.session import db_session
from app.domain import service
from app.domain.schemas import DomainAdd, DomainAssign
from app.organization.dns import resolver_for

router = APIRouter(tags=["domains"])

DOMAINS = "/accounts/{account_id}/domains"
DOMAIN = DOMAINS + "/{domain}"
READ = scoped("domains", "read")
WRITE = scoped("domains", "write")


def _resolver(request: Request) -> service.TxtResolver:
    # Tests (and deployments with their own DNS) put a resolver on app.state.
    return getattr(request.app.state, "txt_resolver", None) or resolver_for(
        request.app.state.settings.dns_nameservers)


@router.get(DOMAINS, response_model=Page[AccountDomain])
async def list_domains(
    account_id: str,
    _: Principal = Depends(READ),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """The account's domains (at most 20: one page)."""
    account = await accounts.get_account(session, account_id)
    return envelopes.page(list(account.domains))


@router.post(DOMAINS, status_code=201, response_model=Obj[AccountOut])
async def add_domain(
    account_id: str,
    body: DomainAdd,
    principal: Principal = Depends(WRITE),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Add a hostname; prove it with the TXT record in its `verification`, then verify."""
    account = await service.lock_account(session, account_id)
    account = await service.add_domain(session, account, body.host, principal)
    return envelopes.created(AccountOut.of(account))


@router.delete(DOMAIN, status_code=204)
async def remove_domain(
    account_id: str,
    domain: str,
    request: Request,
    principal: Principal = Depends(WRITE),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> Response:
    """Remove a domain from the account."""
    account = if_match(request, await service.lock_account(session, account_id))
    await service.remove_domain(session, account, domain, principal)
    return envelopes.no_content()


@router.post(DOMAIN + "/assign", response_model=Obj[AccountOut])
async def assign_domain(
    account_id: str,
    domain: str,
    body: DomainAssign,
    request: Request,
    principal: Principal = Depends(WRITE),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Route the domain to one of the account's issuers."""
    account = if_match(request, await service.lock_account(session, account_id))
    account = await service.assign_domain(session, account, domain, body.issuer_id, principal)
    return envelopes.obj(AccountOut.of(account))


@router.post(DOMAIN + "/unassign", response_model=Obj[AccountOut])
async def unassign_domain(
    account_id: str,
    domain: str,
    request: Request,
    principal: Principal = Depends(WRITE),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Stop routing the domain to its issuer."""
    account = if_match(request, await service.lock_account(session, account_id))
    account = await service.unassign_domain(session, account, domain, principal)
    return envelopes.obj(AccountOut.of(account))


@router.post(DOMAIN + "/verify", response_model=Obj[AccountOut])
async def verify_domain(
    account_id: str,
    domain: str,
    request: Request,
    principal: Principal = Depends(WRITE),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Check the domain's TXT record; the domain's `verified` says whether it was found."""
    account = if_match(request, await service.lock_account(session, account_id))
    account = await service.verify_domain(session, account, domain, _resolver(request), principal)
    return envelopes.obj(AccountOut.of(account))
