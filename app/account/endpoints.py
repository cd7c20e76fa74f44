"""Accounts: list, get, update (SDK-CONTRACT §2.1)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from app.account import service
from app.account.schemas import AccountOut, AccountUpdate
from app.core import envelopes
from app.core.auth import Principal, account_principal, current_principal, scoped
from app.core.errors import Forbidden
from app.core.etags import if_match
from app.core.pagination import PageParams, page_params
from app.core.responses import Obj, Page
from app.core.session import db_session

router = APIRouter(tags=["accounts"])


@router.get("/accounts", response_model=Page[AccountOut])
async def list_accounts(
    principal: Principal = Depends(current_principal),
    params: PageParams = Depends(page_params),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """The accounts this credential can manage."""
    if not principal.account_level or principal.issuer_ids is not None:
        raise Forbidden("This credential cannot manage accounts")
    account = await service.get_account(session, principal.account_id)
    items = [] if params.after_id and params.after_id >= account.id else [AccountOut.of(account)]
    return envelopes.page(items)


@router.get("/accounts/{account_id}", response_model=Obj[AccountOut])
async def get_account(
    account_id: str,
    _: Principal = Depends(account_principal),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """One account."""
    return envelopes.obj(AccountOut.of(await service.get_account(session, account_id)))


@router.patch("/accounts/{account_id}", response_model=Obj[AccountOut])
async def update_account(
    account_id: str,
    body: AccountUpdate,
    request: Request,
    principal: Principal = Depends(scoped("accounts", "write")),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Change an account's name, description, logo, owner or metadata."""
    account = if_match(request, await service.get_account(session, account_id))
    account = await service.update_account(session, account, body, principal)
    return envelopes.obj(AccountOut.of(account))
