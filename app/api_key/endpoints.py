"""GET /v1/me (who is calling) and the API key routes (SDK-CONTRACT §1.2, §2.2, §2.17)."""

from __future__ import annotations

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.account.schemas import AUTHPI_ISSUER_ID
from app.account.service import get_account
from app.api_key import service
from app.api_key.schemas import (
    ApiKeyListItem,
    ApiKeyOut,
    ApiKeyWithSecret,
    CallerIdentity,
    CreateApiKey,
    KeyRotated,
    RotateApiKey,
    StatusChange,
    UpdateApiKey,
)
from app.api_key.verification import caller_identity
from app.core import envelopes
from app.core.auth import (
    Principal,
    account_principal,
    authenticate,
    issuer_filtering_principal,
    require_scope,
    scoped,
)
from app.core.errors import InsufficientScope
from app.core.etags import check_if_match
from app.core.pagination import PageParams, page_params
from app.core.responses import Obj, Page, with_fields
from app.core.scopes import has_access
from app.core.session import db_session
from app.models.api_key import ApiKey
from app.organization.service import resolve_organization

router = APIRouter(tags=["api-keys"])

KEYS = "/accounts/{account_id}/api-keys"
KEY = KEYS + "/{key_id}"
ORG_KEYS = "/accounts/{account_id}/issuers/{issuer_id}/organizations/{org_id}/api-keys"
# Account keys are governed by `api_keys:*`; organization keys also by the organization scope.
ORG_RESOURCE = "issuers.organizations.api_keys"


@router.get("/me", response_model=Obj[CallerIdentity])
async def get_me(request: Request) -> Response:
    """Who is calling: the credential's account or organization and its scopes."""
    principal = await authenticate(request)
    entry = getattr(request.state, "api_key_entry", None)
    if entry is None or principal.type != "api_key":
        return JSONResponse({"data": caller_identity(principal)})
    request.app.state.key_verifier.record_verified(entry, request.state.client_address)
    if request.state.api_key_cold:
        # A first verification already paid for argon2 and a query: write its event now, so a
        # trail read right after (the quickstart's step 6) sees it. Warm ones are batched.
        await request.app.state.event_batcher.flush()
    return Response(entry.me_body, media_type="application/json")


# -- account keys ---------------------------------------------------------------------------------


class KeyFilterParams:
    def __init__(
        self,
        q: str | None = Query(None, max_length=200),
        status: str | None = Query(None, max_length=32),
        access: str | None = Query(None, max_length=128, description="Keys granted exactly this scope"),
        readiness: str | None = Query(None, max_length=32, description="ready | expiring | unusable"),
    ) -> None:
        self.filters = service.KeyFilters(q=q, status=status, access=access, readiness=readiness)
        self.filters.validate()


def _require_key_scope(principal: Principal, key: ApiKey, action: str) -> None:
    """Organization keys may also be managed with the organization-level scope."""
    if key.owner_kind == "organization" and has_access(principal.scopes, ORG_RESOURCE, action):
        return
    if not has_access(principal.scopes, "api_keys", action):
        raise InsufficientScope(f"The credential lacks the scope api_keys:{action}")


async def _key_for(session: AsyncSession, request: Request, account_id: str, key_id: str,
                   principal: Principal, action: str) -> ApiKey:
    key = await service.get_key(session, account_id=account_id, key_id=key_id, for_update=True,
                                issuer_ids=principal.issuer_ids)
    _require_key_scope(principal, key, action)
    check_if_match(request, key.version)
    return key


async def _account_org_id(session: AsyncSession, account_id: str) -> str:

    return (await get_account(session, account_id)).org_id


@router.get(KEYS, response_model=Page[ApiKeyListItem])
async def list_api_keys(
    account_id: str,
    filters: KeyFilterParams = Depends(),
    params: PageParams = Depends(page_params),
    principal: Principal = Depends(scoped("api_keys", "read", filters_issuers=True)),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """The account's own API keys, newest first (organization keys are listed per organization).
    An issuer-limited key lists the keys limited within its issuers."""
    rows, has_more, cursor = await service.list_keys(
        session, account_id=account_id, filters=filters.filters, params=params, owner_kind="account",
        issuer_ids=principal.issuer_ids)
    return envelopes.page([ApiKeyListItem.of(k) for k in rows], has_more=has_more, next_cursor=cursor)


@router.post(KEYS, status_code=201, response_model=Obj[ApiKeyWithSecret])
async def create_api_key(
    account_id: str,
    body: CreateApiKey,
    principal: Principal = Depends(scoped("api_keys", "write", filters_issuers=True)),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Create an account API key; its secret is in this response only. An issuer-limited caller
    creates keys limited within its issuers only."""

    key, secret = await service.create_account_key(
        session, account_id=account_id, account_org_id=await _account_org_id(session, account_id),
        issuer_id=AUTHPI_ISSUER_ID, body=body, auth=principal)
    return envelopes.created(ApiKeyWithSecret.with_secret(key, secret))


@router.get(KEY, response_model=Obj[ApiKeyOut])
async def get_api_key(
    account_id: str,
    key_id: str,
    principal: Principal = Depends(issuer_filtering_principal),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """One API key of the account (account or organization key); never its secret."""
    key = await service.get_key(session, account_id=account_id, key_id=key_id,
                                issuer_ids=principal.issuer_ids)
    _require_key_scope(principal, key, "read")
    return envelopes.obj(ApiKeyOut.of(key))


@router.patch(KEY, response_model=Obj[ApiKeyOut])
async def update_api_key(
    account_id: str,
    key_id: str,
    body: UpdateApiKey,
    request: Request,
    principal: Principal = Depends(issuer_filtering_principal),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Change a key's name, description, tags, restrictions, expiry, metadata or status."""
    key = await _key_for(session, request, account_id, key_id, principal, "write")
    return envelopes.obj(ApiKeyOut.of(await service.update_key(session, key, body, principal)))


@router.delete(KEY, status_code=204)
async def delete_api_key(
    account_id: str,
    key_id: str,
    request: Request,
    principal: Principal = Depends(issuer_filtering_principal),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> Response:
    """Delete a key for good (its secret hash goes with it)."""
    key = await _key_for(session, request, account_id, key_id, principal, "write")
    await service.delete_key(session, key, principal)
    return envelopes.no_content()


@router.post(KEY + "/block", response_model=Obj[ApiKeyOut])
async def block_api_key(
    account_id: str,
    key_id: str,
    request: Request,
    body: StatusChange | None = Body(None),
    principal: Principal = Depends(issuer_filtering_principal),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Block a key (reversible): it stops verifying at once, everywhere."""
    key = await _key_for(session, request, account_id, key_id, principal, "write")
    return envelopes.obj(ApiKeyOut.of(await service.block_key(session, key, body, principal)))


@router.post(KEY + "/unblock", response_model=Obj[ApiKeyOut])
async def unblock_api_key(
    account_id: str,
    key_id: str,
    request: Request,
    principal: Principal = Depends(issuer_filtering_principal),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Unblock a blocked key."""
    key = await _key_for(session, request, account_id, key_id, principal, "write")
    return envelopes.obj(ApiKeyOut.of(await service.unblock_key(session, key, principal)))


@router.post(KEY + "/revoke", response_model=Obj[ApiKeyOut])
async def revoke_api_key(
    account_id: str,
    key_id: str,
    request: Request,
    body: StatusChange | None = Body(None),
    principal: Principal = Depends(issuer_filtering_principal),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Revoke a key (final): it never verifies again."""
    key = await _key_for(session, request, account_id, key_id, principal, "write")
    return envelopes.obj(ApiKeyOut.of(await service.revoke_key(session, key, body, principal)))


@router.post(KEY + "/rotate", response_model=Obj[KeyRotated])
async def rotate_api_key(
    account_id: str,
    key_id: str,
    request: Request,
    body: RotateApiKey | None = Body(None),
    principal: Principal = Depends(issuer_filtering_principal),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Give a key a new secret, returned in this response only (optional grace for the old one)."""
    key = await _key_for(session, request, account_id, key_id, principal, "write")
    key, secret = await service.rotate_key(session, key, body, principal)
    return envelopes.obj(KeyRotated.model_validate(with_fields(key, secret_plain=secret)),
                         etag_ms=key.version)


# -- organization keys ----------------------------------------------------------------------------


@router.get(ORG_KEYS, response_model=Page[ApiKeyListItem])
async def list_organization_api_keys(
    account_id: str,
    issuer_id: str,
    org_id: str,
    filters: KeyFilterParams = Depends(),
    params: PageParams = Depends(page_params),
    principal: Principal = Depends(account_principal),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """The organization's API keys, newest first."""
    require_scope(principal, ORG_RESOURCE, "read")
    await resolve_organization(session, account_id, issuer_id, org_id)
    rows, has_more, cursor = await service.list_keys(
        session, account_id=account_id, filters=filters.filters, params=params,
        owner_kind="organization", org_id=org_id, issuer_id=issuer_id)
    return envelopes.page([ApiKeyListItem.of(k) for k in rows], has_more=has_more, next_cursor=cursor)


@router.post(ORG_KEYS, status_code=201, response_model=Obj[ApiKeyWithSecret])
async def create_organization_api_key(
    account_id: str,
    issuer_id: str,
    org_id: str,
    body: CreateApiKey,
    principal: Principal = Depends(account_principal),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Mint an organization API key (scopes within what the organization grants); secret shown once."""
    require_scope(principal, ORG_RESOURCE, "write")
    org = await resolve_organization(session, account_id, issuer_id, org_id)
    key, secret = await service.create_org_key(session, org=org, body=body, auth=principal)
    return envelopes.created(ApiKeyWithSecret.with_secret(key, secret))
