"""Organization invitations: list, create, get, update, resend, revoke (SDK-CONTRACT §2.17)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import envelopes
from app.core.auth import Principal, scoped
from app.core.etags import check_if_match
from app.core.pagination import PageParams, page_params
from app.core.responses import Obj, Page
from app.core.session import db_session
from app.email.service import Mailer, get_mailer
from app.invitation import service
from app.invitation.schemas import InvitationCreate, InvitationOut, InvitationUpdate
from app.models.invitation import Invitation
from app.organization.service import resolve_organization

router = APIRouter(tags=["invitations"])

INVITATIONS = "/accounts/{account_id}/issuers/{issuer_id}/organizations/{org_id}/invitations"
ONE = INVITATIONS + "/{invitation_id}"
READ = scoped("issuers.organizations", "read")
WRITE = scoped("issuers.organizations", "write")


def _action_result(inv: Invitation) -> InvitationOut:
    """resend/revoke answer a free-form object (DICT): the invitation's state after the action."""
    return InvitationOut.of(inv)


@router.get(INVITATIONS, response_model=Page[InvitationOut])
async def list_invitations(
    account_id: str,
    issuer_id: str,
    org_id: str,
    status: str | None = Query(None, max_length=32),
    params: PageParams = Depends(page_params),
    _: Principal = Depends(READ),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """The organization's invitations, newest first."""
    org = await resolve_organization(session, account_id, issuer_id, org_id)
    rows, has_more, cursor = await service.list_invitations(session, org, params, status)
    return envelopes.page([InvitationOut.of(i) for i in rows], has_more=has_more,
                          next_cursor=cursor)


@router.post(INVITATIONS, status_code=201, response_model=Obj[InvitationOut])
async def create_invitation(
    account_id: str,
    issuer_id: str,
    org_id: str,
    body: InvitationCreate,
    principal: Principal = Depends(WRITE),
    mailer: Mailer = Depends(get_mailer),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Invite an email address to the organization with scopes and/or groups; the invitation email
    goes out through the outbox once this commits."""
    org = await resolve_organization(session, account_id, issuer_id, org_id)
    inv = await service.create_invitation(session, org, body, principal, mailer)
    return envelopes.created(InvitationOut.of(inv))


@router.get(ONE, response_model=Obj[InvitationOut])
async def get_invitation(
    account_id: str,
    issuer_id: str,
    org_id: str,
    invitation_id: str,
    _: Principal = Depends(READ),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """One invitation."""
    org = await resolve_organization(session, account_id, issuer_id, org_id)
    return envelopes.obj(InvitationOut.of(await service.get_invitation(session, org, invitation_id)))


@router.patch(ONE, response_model=Obj[InvitationOut])
async def update_invitation(
    account_id: str,
    issuer_id: str,
    org_id: str,
    invitation_id: str,
    body: InvitationUpdate,
    request: Request,
    principal: Principal = Depends(WRITE),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Change a pending invitation's scopes, groups, title, message, expiry or metadata."""
    org = await resolve_organization(session, account_id, issuer_id, org_id)
    inv = await service.get_invitation(session, org, invitation_id, for_update=True)
    check_if_match(request, inv.version)
    inv = await service.update_invitation(session, org, inv, body, principal)
    return envelopes.obj(InvitationOut.of(inv))


@router.post(ONE + "/resend", response_model=Obj[InvitationOut])
async def resend_invitation(
    account_id: str,
    issuer_id: str,
    org_id: str,
    invitation_id: str,
    request: Request,
    principal: Principal = Depends(WRITE),
    mailer: Mailer = Depends(get_mailer),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Send a pending invitation again with a new link and restart its validity window (no body)."""
    org = await resolve_organization(session, account_id, issuer_id, org_id)
    inv = await service.get_invitation(session, org, invitation_id, for_update=True)
    check_if_match(request, inv.version)
    inv = await service.resend_invitation(session, org, inv, principal, mailer)
    return envelopes.obj(_action_result(inv))


@router.post(ONE + "/revoke", response_model=Obj[InvitationOut])
async def revoke_invitation(
    account_id: str,
    issuer_id: str,
    org_id: str,
    invitation_id: str,
    request: Request,
    principal: Principal = Depends(WRITE),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Revoke a pending invitation (no body)."""
    org = await resolve_organization(session, account_id, issuer_id, org_id)
    inv = await service.get_invitation(session, org, invitation_id, for_update=True)
    check_if_match(request, inv.version)
    inv = await service.revoke_invitation(session, inv, principal)
    return envelopes.obj(_action_result(inv))
