"""Clients: {I}/clients (SDK-CONTRACT §2.15)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.client import registration, service
from app.client.schemas import (
    ClientCreate,
    ClientCreated,
    ClientListItem,
    ClientOut,
    ClientSecret,
    ClientUpdate,
)
from app.core import envelopes
from app.core.auth import Principal, scoped
from app.core.etags import if_match
from app.core.pagination import PageParams, page_params
from app.core.responses import Obj, Page, ResponseModel, with_fields
from app.core.session import db_session
from app.issuer.dependencies import get_issuer_in_account

router = APIRouter(tags=["clients"])
BASE = "/accounts/{account_id}/issuers/{issuer_id}/clients"


@router.get(BASE, response_model=Page[ClientListItem])
async def list_clients(
    account_id: str,
    issuer_id: str,
    q: str | None = Query(None, max_length=200),
    name: str | None = Query(None, max_length=200),
    status: str | None = Query(None, max_length=32),
    application_type: str | None = Query(None, max_length=32),
    readiness: str | None = Query(None, max_length=32),
    params: PageParams = Depends(page_params),
    _: Principal = Depends(scoped("issuers.clients", "read")),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """The issuer's clients, newest first."""
    issuer = await get_issuer_in_account(session, account_id, issuer_id)
    rows, has_more, cursor = await service.list_clients(
        session, issuer, params, q=q, name=name, status=status, application_type=application_type,
        readiness=readiness)
    return envelopes.page([ClientListItem.of(c) for c in rows], has_more=has_more, next_cursor=cursor)


@router.post(BASE, status_code=201, response_model=Obj[ClientCreated])
async def create_client(
    account_id: str,
    issuer_id: str,
    body: ClientCreate,
    principal: Principal = Depends(scoped("issuers.clients", "write")),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Register a client; a confidential client's secret is returned only here."""
    issuer = await get_issuer_in_account(session, account_id, issuer_id)
    client, secret = await service.create_client(session, issuer, body, principal)
    return envelopes.created(ClientCreated.model_validate(with_fields(client, secret=secret)))


@router.get(BASE + "/{client_id}", response_model=Obj[ClientOut])
async def get_client(
    account_id: str,
    issuer_id: str,
    client_id: str,
    _: Principal = Depends(scoped("issuers.clients", "read")),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """One client (never its secret)."""
    issuer = await get_issuer_in_account(session, account_id, issuer_id)
    return envelopes.obj(ClientOut.of(await service.get_client(session, issuer, client_id)))


@router.patch(BASE + "/{client_id}", response_model=Obj[ClientOut])
async def update_client(
    account_id: str,
    issuer_id: str,
    client_id: str,
    body: ClientUpdate,
    request: Request,
    principal: Principal = Depends(scoped("issuers.clients", "write")),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Change a client's name, settings, status or metadata."""
    issuer = await get_issuer_in_account(session, account_id, issuer_id)
    client = if_match(request, await service.get_client(session, issuer, client_id))
    client = await service.update_client(session, client, body, principal)
    return envelopes.obj(ClientOut.of(client))


@router.delete(BASE + "/{client_id}", status_code=204)
async def delete_client(
    account_id: str,
    issuer_id: str,
    client_id: str,
    request: Request,
    principal: Principal = Depends(scoped("issuers.clients", "write")),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> Response:
    """Delete a client: it can no longer authenticate or sign users in."""
    issuer = await get_issuer_in_account(session, account_id, issuer_id)
    client = if_match(request, await service.get_client(session, issuer, client_id))
    await service.delete_client(session, client, principal)
    return envelopes.no_content()


@router.post(BASE + "/{client_id}/secret/rotate", response_model=Obj[ClientSecret])
async def rotate_client_secret(
    account_id: str,
    issuer_id: str,
    client_id: str,
    request: Request,
    principal: Principal = Depends(scoped("issuers.clients", "write")),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Replace a confidential client's secret; the new one is returned only here."""
    issuer = await get_issuer_in_account(session, account_id, issuer_id)
    client = if_match(request, await service.get_client(session, issuer, client_id))
    secret = await service.rotate_secret(session, client, principal)
    return envelopes.obj(ClientSecret(secret=secret), etag_ms=client.version)


class RegistrationTokenCreated(ResponseModel):
    """An initial access token for `POST /{issuer}/register` (RFC 7591 §3): single use, shown once."""

    id: str
    issuer_id: str
    token: str
    expires_at: int
    created_at: int


@router.post("/accounts/{account_id}/issuers/{issuer_id}/registration-tokens", status_code=201,
             response_model=Obj[RegistrationTokenCreated], tags=["clients"])
async def create_registration_token(
    account_id: str,
    issuer_id: str,
    request: Request,
    principal: Principal = Depends(scoped("issuers.clients", "write")),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """An initial access token for dynamic client registration, when the issuer's
    `settings.security.client_registration` is `"token"`. Single use; the token is shown only here."""
    issuer = await get_issuer_in_account(session, account_id, issuer_id)
    ttl = request.app.state.settings.registration_token_ttl_seconds
    row, raw = await registration.create_registration_token(
        session, request.app.state.secret_key, issuer, ttl_seconds=ttl, auth=principal)
    return envelopes.created(RegistrationTokenCreated(id=row.id, issuer_id=row.issuer_id, token=raw,
                                                      expires_at=row.expires_at, created_at=row.created_at))
