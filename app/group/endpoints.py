"""Groups of an organization: list, create, get, update, delete (SDK-CONTRACT §2.17)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import envelopes
from app.core.auth import Principal, scoped
from app.core.etags import if_match
from app.core.pagination import PageParams, page_params
from app.core.responses import Obj, Page
from app.core.session import db_session
from app.group import service
from app.group.schemas import GroupCreate, GroupOut, GroupUpdate
from app.organization.service import resolve_organization

router = APIRouter(tags=["groups"])

GROUPS = "/accounts/{account_id}/issuers/{issuer_id}/organizations/{org_id}/groups"
READ = scoped("issuers.organizations", "read")
WRITE = scoped("issuers.organizations", "write")


@router.get(GROUPS, response_model=Page[GroupOut])
async def list_groups(
    account_id: str,
    issuer_id: str,
    org_id: str,
    params: PageParams = Depends(page_params),
    _: Principal = Depends(READ),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """The organization's groups, newest first."""
    org = await resolve_organization(session, account_id, issuer_id, org_id)
    rows, has_more, cursor = await service.list_groups(session, org, params)
    return envelopes.page([GroupOut.of(g) for g in rows], has_more=has_more, next_cursor=cursor)


@router.post(GROUPS, status_code=201, response_model=Obj[GroupOut])
async def create_group(
    account_id: str,
    issuer_id: str,
    org_id: str,
    body: GroupCreate,
    principal: Principal = Depends(WRITE),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Create a group; its scopes must lie within what the organization may grant."""
    org = await resolve_organization(session, account_id, issuer_id, org_id)
    group = await service.create_group(session, org, body, principal)
    return envelopes.created(GroupOut.of(group))


@router.get(GROUPS + "/{group_id}", response_model=Obj[GroupOut])
async def get_group(
    account_id: str,
    issuer_id: str,
    org_id: str,
    group_id: str,
    _: Principal = Depends(READ),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """One group."""
    org = await resolve_organization(session, account_id, issuer_id, org_id)
    return envelopes.obj(GroupOut.of(await service.get_group(session, org, group_id)))


@router.patch(GROUPS + "/{group_id}", response_model=Obj[GroupOut])
async def update_group(
    account_id: str,
    issuer_id: str,
    org_id: str,
    group_id: str,
    body: GroupUpdate,
    request: Request,
    principal: Principal = Depends(WRITE),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Change a group's name, description, scopes or metadata."""
    org = await resolve_organization(session, account_id, issuer_id, org_id)
    group = if_match(request, await service.get_group(session, org, group_id, for_update=True))
    group = await service.update_group(session, org, group, body, principal)
    return envelopes.obj(GroupOut.of(group))


@router.delete(GROUPS + "/{group_id}", status_code=204)
async def delete_group(
    account_id: str,
    issuer_id: str,
    org_id: str,
    group_id: str,
    request: Request,
    principal: Principal = Depends(WRITE),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> Response:
    """Delete a group; members no longer inherit its scopes."""
    org = await resolve_organization(session, account_id, issuer_id, org_id)
    group = if_match(request, await service.get_group(session, org, group_id, for_update=True))
    await service.delete_group(session, group, principal)
    return envelopes.no_content()
