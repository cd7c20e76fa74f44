"""Login sessions: {I}/sessions/{id} get/revoke/suspend/reactivate and {U}/sessions (§2.18, §2.19)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import StringConstraints
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import envelopes
from app.core.auth import Principal, scoped
from app.core.errors import ValidationFailed
from app.core.etags import if_match
from app.core.responses import Obj, Page, optional_json_body
from app.core.rows import one_or_404
from app.core.session import db_session
from app.core.validation import StrictModel
from app.issuer.dependencies import get_issuer_in_account
from app.models.oidc import LoginSession
from app.models.user import User
from app.session import service

router = APIRouter(tags=["sessions"])
BASE = "/accounts/{account_id}/issuers/{issuer_id}"
MAX_LISTED = 100


class SessionAction(StrictModel):
    reason: Annotated[str, StringConstraints(max_length=1024)] | None = None
    status_reason: Annotated[str, StringConstraints(max_length=1024)] | None = None


async def _optional_body(request: Request) -> SessionAction:
    """The SDK may send no body at all (no content-type): that is an empty action."""
    raw = await request.body()
    if not raw.strip():
        return SessionAction()
    try:
        return SessionAction.model_validate_json(raw)
    except ValueError as exc:
        raise ValidationFailed("The request body is invalid", field="body") from exc


@router.get(BASE + "/users/{user_id}/sessions", response_model=Page[service.SessionOut])
async def list_user_sessions(
    account_id: str, issuer_id: str, user_id: str,
    status: str | None = Query(None, max_length=32),
    _: Principal = Depends(scoped("issuers.users.sessions", "read")),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """A user's login sessions, newest first (not paginated: has_more is always false)."""
    await get_issuer_in_account(session, account_id, issuer_id)
    await one_or_404(session, select(User.id).where(User.id == user_id, User.account_id == account_id,
                                                    User.issuer_id == issuer_id, User.status != "deleted"),
                     "user")
    stmt = select(LoginSession).where(LoginSession.account_id == account_id,
                                      LoginSession.issuer_id == issuer_id, LoginSession.user_id == user_id)
    rows = (await session.scalars(stmt.order_by(LoginSession.id.desc()).limit(MAX_LISTED))).all()
    items = [service.SessionOut.of(r) for r in rows]
    if status:
        items = [i for i in items if i["status"] == status]
    return envelopes.page(items)


@router.get(BASE + "/sessions/{session_id}", response_model=Obj[service.SessionOut])
async def get_session(
    account_id: str, issuer_id: str, session_id: str,
    _: Principal = Depends(scoped("issuers.sessions", "read")),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """One login session."""
    await get_issuer_in_account(session, account_id, issuer_id)
    row = await service.get_session(session, account_id, issuer_id, session_id)
    return envelopes.obj(service.SessionOut.of(row))


async def _end(request: Request, account_id: str, issuer_id: str, session_id: str, principal: Principal,
               session: AsyncSession, *, status: str, event: str) -> service.SessionOut:
    body = await _optional_body(request)
    await get_issuer_in_account(session, account_id, issuer_id)
    row = if_match(request, await service.get_session(session, account_id, issuer_id, session_id))
    if row.status == "revoked":
        raise ValidationFailed("The session is already revoked", field="status")
    row = await service.end_session(session, row, status=status, reason=body.reason or body.status_reason,
                                    event=event, auth=principal)
    return service.SessionOut.of(row)


@router.post(BASE + "/sessions/{session_id}/revoke", response_model=Obj[service.SessionOut],
             openapi_extra=optional_json_body(SessionAction))
async def revoke_session(
    account_id: str, issuer_id: str, session_id: str, request: Request,
    principal: Principal = Depends(scoped("issuers.sessions", "write")),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """End a session for good; its refresh and access tokens stop working."""
    return envelopes.obj(await _end(request, account_id, issuer_id, session_id, principal, session,
                                    status="revoked", event="session.revoked"))


@router.post(BASE + "/sessions/{session_id}/suspend", response_model=Obj[service.SessionOut],
             openapi_extra=optional_json_body(SessionAction))
async def suspend_session(
    account_id: str, issuer_id: str, session_id: str, request: Request,
    principal: Principal = Depends(scoped("issuers.sessions", "write")),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Suspend a session; its tokens stop working (reactivate lets the user sign in silently again)."""
    return envelopes.obj(await _end(request, account_id, issuer_id, session_id, principal, session,
                                    status="suspended", event="session.suspended"))


@router.post(BASE + "/sessions/{session_id}/reactivate", response_model=Obj[service.SessionOut])
async def reactivate_session(
    account_id: str, issuer_id: str, session_id: str, request: Request,
    principal: Principal = Depends(scoped("issuers.sessions", "write")),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Reactivate a suspended session."""
    await get_issuer_in_account(session, account_id, issuer_id)
    row = if_match(request, await service.get_session(session, account_id, issuer_id, session_id))
    row = await service.reactivate(session, row, principal)
    return envelopes.obj(service.SessionOut.of(row))
