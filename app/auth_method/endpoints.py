"""Auth methods of an issuer: `{I}/auth-methods` (SDK-CONTRACT §2.14)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth_method import service
from app.auth_method.schemas import AuthMethodCreate, AuthMethodOut, AuthMethodUpdate
from app.core import envelopes
from app.core.auth import Principal, scoped
from app.core.etags import if_match
from app.core.responses import Obj, Page
from app.core.session import db_session
from app.issuer.dependencies import get_issuer_in_account

router = APIRouter(tags=["auth-methods"])

METHODS = "/accounts/{account_id}/issuers/{issuer_id}/auth-methods"
METHOD = METHODS + "/{method_id}"
# Auth methods are issuer configuration, so they share the issuer's scopes.
READ = scoped("issuers", "read")
WRITE = scoped("issuers", "write")


def _public(request: Request) -> str:
    return str(request.app.state.settings.resolved_public_url())


@router.get(METHODS, response_model=Page[AuthMethodOut])
async def list_auth_methods(
    account_id: str,
    issuer_id: str,
    request: Request,
    _: Principal = Depends(READ),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Every auth method of the issuer (a short list: one page)."""
    await get_issuer_in_account(session, account_id, issuer_id)
    rows = await service.list_methods(session, account_id=account_id, issuer_id=issuer_id)
    return envelopes.page([AuthMethodOut.of(m, _public(request)) for m in rows])


@router.post(METHODS, status_code=201, response_model=Obj[AuthMethodOut])
async def create_auth_method(
    account_id: str,
    issuer_id: str,
    body: AuthMethodCreate,
    request: Request,
    principal: Principal = Depends(WRITE),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Add a sign-in method; first-party types exist at most once per issuer."""
    issuer = await get_issuer_in_account(session, account_id, issuer_id)
    m = await service.create_method(session, issuer, body, principal, request.app.state.secret_key,
                                   allow_private=request.app.state.settings.webhooks_allow_private)
    return envelopes.created(AuthMethodOut.of(m, _public(request)))


@router.get(METHOD, response_model=Obj[AuthMethodOut])
async def get_auth_method(
    account_id: str,
    issuer_id: str,
    method_id: str,
    request: Request,
    _: Principal = Depends(READ),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """One auth method."""
    await get_issuer_in_account(session, account_id, issuer_id)
    m = await service.get_method(session, account_id=account_id, issuer_id=issuer_id, method_id=method_id)
    return envelopes.obj(AuthMethodOut.of(m, _public(request)))


@router.patch(METHOD, response_model=Obj[AuthMethodOut])
async def update_auth_method(
    account_id: str,
    issuer_id: str,
    method_id: str,
    body: AuthMethodUpdate,
    request: Request,
    principal: Principal = Depends(WRITE),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Enable, disable or reconfigure an auth method."""
    await get_issuer_in_account(session, account_id, issuer_id)
    m = if_match(request, await service.get_method(session, account_id=account_id, issuer_id=issuer_id,
                                                   method_id=method_id, for_update=True))
    m = await service.update_method(session, m, body, principal, request.app.state.secret_key,
                                   allow_private=request.app.state.settings.webhooks_allow_private)
    return envelopes.obj(AuthMethodOut.of(m, _public(request)))


@router.delete(METHOD, status_code=204)
async def delete_auth_method(
    account_id: str,
    issuer_id: str,
    method_id: str,
    request: Request,
    principal: Principal = Depends(WRITE),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> Response:
    """Remove an auth method."""
    await get_issuer_in_account(session, account_id, issuer_id)
    m = if_match(request, await service.get_method(session, account_id=account_id, issuer_id=issuer_id,
                                                   method_id=method_id, for_update=True))
    await service.delete_method(session, m, principal)
    return envelopes.no_content()
