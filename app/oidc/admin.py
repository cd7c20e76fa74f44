"""The admin API's side of the protocol layer: `POST {I}/tokens/introspect` (SDK-CONTRACT §2.13),
the same answer as the issuer's RFC 7662 endpoint. Mounted under /v1 by app.api."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import envelopes
from app.core.auth import Principal, scoped
from app.core.errors import ValidationFailed
from app.core.responses import Obj
from app.core.session import db_session
from app.issuer.dependencies import get_issuer_in_account
from app.issuer.schemas import IntrospectRequestBody
from app.oidc.endpoints.introspect import introspect_token as introspect
from app.oidc.openapi import Introspection

router = APIRouter()


@router.post("/accounts/{account_id}/issuers/{issuer_id}/tokens/introspect", tags=["issuers"],
             response_model=Obj[Introspection], openapi_extra=IntrospectRequestBody)
async def introspect_token(
    account_id: str,
    issuer_id: str,
    request: Request,
    _: Principal = Depends(scoped("issuers.tokens", "read")),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """RFC 7662 introspection of one of the issuer's tokens: `{"token": ...}` → `{active, ...}`."""
    await get_issuer_in_account(session, account_id, issuer_id)
    try:
        body = await request.json() if (await request.body()).strip() else {}
    except ValueError as exc:
        raise ValidationFailed("The body must be JSON", field="body") from exc
    token = body.get("token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token or len(token) > 8192:
        raise ValidationFailed("token is required", field="token")
    return envelopes.obj(await introspect(request.app, issuer_id, token))
