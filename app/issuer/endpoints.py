"""Issuers: {A}/issuers (SDK-CONTRACT §2.13)."""

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
from app.issuer import service
from app.issuer.dependencies import get_issuer_in_account
from app.issuer.schemas import (
    IssuerCreate,
    IssuerListItem,
    IssuerOut,
    IssuerUpdate,
    SigningKeysRotated,
)
from app.signing_key.service import rotate_signing_keys as rotate_keys

router = APIRouter(tags=["issuers"])
BASE = "/accounts/{account_id}/issuers"


@router.get(BASE, response_model=Page[IssuerListItem])
async def list_issuers(
    account_id: str,
    q: str | None = Query(None, max_length=200),
    status: str | None = Query(None, max_length=32),
    access_mode: str | None = Query(None, max_length=32),
    readiness: str | None = Query(None, max_length=32),
    params: PageParams = Depends(page_params),
    principal: Principal = Depends(scoped("issuers", "read", filters_issuers=True)),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """The account's issuers, newest first (an issuer-limited key's own issuers only)."""
    rows, has_more, cursor = await service.list_issuers(
        session, account_id=account_id, params=params, q=q, status=status, access_mode=access_mode,
        readiness=readiness, only=principal.issuer_ids)
    return envelopes.page([IssuerListItem.of_counts(i, n, m) for i, n, m in rows], has_more=has_more,
                          next_cursor=cursor)


@router.post(BASE, status_code=201, response_model=Obj[IssuerOut])
async def create_issuer(
    account_id: str,
    body: IssuerCreate,
    request: Request,
    principal: Principal = Depends(scoped("issuers", "write")),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Create an issuer and its signing keys; its OIDC endpoints answer at once."""
    issuer = await service.create_issuer(session, account_id=account_id, body=body,
                                         server_key=request.app.state.secret_key, auth=principal)
    return envelopes.created(IssuerOut.of(issuer))


@router.get(BASE + "/{issuer_id}", response_model=Obj[IssuerOut])
async def get_issuer(
    account_id: str,
    issuer_id: str,
    _: Principal = Depends(scoped("issuers", "read")),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """One issuer."""
    return envelopes.obj(IssuerOut.of(await get_issuer_in_account(session, account_id, issuer_id)))


@router.patch(BASE + "/{issuer_id}", response_model=Obj[IssuerOut])
async def update_issuer(
    account_id: str,
    issuer_id: str,
    body: IssuerUpdate,
    request: Request,
    principal: Principal = Depends(scoped("issuers", "write")),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Change an issuer's name, description, scopes, status, settings or metadata."""
    issuer = if_match(request, await get_issuer_in_account(session, account_id, issuer_id))
    issuer = await service.update_issuer(session, issuer, body, principal)
    return envelopes.obj(IssuerOut.of(issuer))


@router.delete(BASE + "/{issuer_id}", status_code=204, response_class=Response)
async def delete_issuer(
    account_id: str,
    issuer_id: str,
    request: Request,
    principal: Principal = Depends(scoped("issuers", "write")),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> Response:
    """Delete an issuer: its OIDC endpoints, clients and tokens stop working."""
    issuer = if_match(request, await get_issuer_in_account(session, account_id, issuer_id))
    await service.delete_issuer(session, issuer, principal)
    return envelopes.no_content()


@router.post(BASE + "/{issuer_id}/signing-keys/rotate", response_model=Obj[SigningKeysRotated])
async def rotate_signing_keys(
    account_id: str,
    issuer_id: str,
    request: Request,
    principal: Principal = Depends(scoped("issuers", "write")),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Rotate the issuer's signing keys; the old public keys stay in the JWKS until their tokens expire."""
    issuer = await get_issuer_in_account(session, account_id, issuer_id)
    keys = await rotate_keys(session, issuer, request.app.state.secret_key, principal)
    return envelopes.obj(SigningKeysRotated(issuer_id=issuer_id, signing_keys=keys))
