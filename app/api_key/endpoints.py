"""GET /v1/me (who is calling) and the API key routes."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from app.core.auth import Principal, current_principal

router = APIRouter(tags=["api-keys"])


def caller_identity(principal: Principal) -> dict[str, object]:
    identity: dict[str, object] = {"type": principal.type, "accounts": [], "organizations": []}
    if principal.key_id:
        identity["key_id"] = principal.key_id
    if principal.user_id:
        identity["user_id"] = principal.user_id
    if principal.account_level:
        identity["accounts"] = [{"account_id": principal.account_id, "org_id": principal.org_id,
                                 "scopes": list(principal.scopes)}]
    else:
        identity["issuer_id"] = principal.issuer_id
        # A user token may carry several organizations (Principal.extra["organizations"]).
        identity["organizations"] = principal.extra.get("organizations") or (
            [{"org_id": principal.org_id, "scopes": list(principal.scopes)}] if principal.org_id else [])
    return identity


@router.get("/me")
async def get_me(principal: Principal = Depends(current_principal)) -> JSONResponse:
    """Who is calling: the credential's account or organization and its scopes."""
    return JSONResponse({"data": caller_identity(principal)})
