"""Organization members: list, add, update, remove (SDK-CONTRACT §2.17; there is no single get)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import envelopes
from app.core.auth import Principal, scoped
from app.core.etags import if_match
from app.core.pagination import PageParams, page_params
from app.core.responses import Obj, Page
from app.core.session import db_session
from app.membership import service
from app.membership.schemas import MemberCreate, MembershipOut, MemberUpdate
from app.organization.service import resolve_organization

router = APIRouter(tags=["members"])

MEMBERS = "/accounts/{account_id}/issuers/{issuer_id}/organizations/{org_id}/members"
READ = scoped("issuers.organizations", "read")
WRITE = scoped("issuers.organizations", "write")


@router.get(MEMBERS, response_model=Page[MembershipOut])
async def list_members(
    account_id: str,
    issuer_id: str,
    org_id: str,
    status: str | None = Query(None, max_length=32),
    scope: str | None = Query(None, max_length=128, description="Members holding this scope"),
    params: PageParams = Depends(page_params),
    _: Principal = Depends(READ),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """The organization's members, newest first."""
    org = await resolve_organization(session, account_id, issuer_id, org_id)
    rows, has_more, cursor = await service.list_memberships(session, org, params, status=status,
                                                            scope=scope)
    return envelopes.page([MembershipOut.of(m) for m in rows], has_more=has_more,
                          next_cursor=cursor)


@router.post(MEMBERS, status_code=201, response_model=Obj[MembershipOut])
async def create_member(
    account_id: str,
    issuer_id: str,
    org_id: str,
    body: MemberCreate,
    principal: Principal = Depends(WRITE),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Add a user of the issuer to the organization with scopes and/or groups."""
    org = await resolve_organization(session, account_id, issuer_id, org_id, for_update=True)
    m = await service.create_membership(session, org, body, principal)
    return envelopes.created(MembershipOut.of(m), etag_ms=m.version)


@router.patch(MEMBERS + "/{member_id}", response_model=Obj[MembershipOut])
async def update_member(
    account_id: str,
    issuer_id: str,
    org_id: str,
    member_id: str,
    body: MemberUpdate,
    request: Request,
    principal: Principal = Depends(WRITE),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Change a member's scopes, groups, title, metadata or status."""
    org = await resolve_organization(session, account_id, issuer_id, org_id)
    m = if_match(request, await service.get_membership(session, org, member_id, for_update=True))
    m = await service.update_membership(session, org, m, body, principal)
    return envelopes.obj(MembershipOut.of(m), etag_ms=m.version)


@router.delete(MEMBERS + "/{member_id}", status_code=204)
async def delete_member(
    account_id: str,
    issuer_id: str,
    org_id: str,
    member_id: str,
    request: Request,
    principal: Principal = Depends(WRITE),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> Response:
    """Remove a member from the organization."""
    org = await resolve_organization(session, account_id, issuer_id, org_id)
    m = if_match(request, await service.get_membership(session, org, member_id, for_update=True))
    await service.delete_membership(session, m, principal)
    return envelopes.no_content()
