"""POST /{issuer}/introspect (RFC 7662), for confidential clients; the admin API's
{I}/tokens/introspect answers with the same shape."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select

from app.agent.verification import VerifiedAgent
from app.core.ids import now_ms
from app.models.oidc import OidcGrant, RefreshToken
from app.oidc import openapi as docs
from app.oidc import tokens
from app.oidc.client_auth import authenticate_caller
from app.oidc.endpoints.token import read_form
from app.oidc.errors import NO_STORE, InvalidRequest, OAuthError, issuer_not_found
from app.oidc.runtime import key_set
from app.oidc.tokens import TokenInvalid
from app.oidc.verify import verify_access_token
from app.user.tokens import verify_personal_token

router = APIRouter()
INACTIVE: dict[str, Any] = {"active": False}


async def introspect_token(app: Any, issuer_id: str, token: str) -> dict[str, Any]:
    """RFC 7662 §2.2 for an access token (JWT) or a refresh token of this issuer."""
    if token.count(".") == 2:
        try:
            _, claims = await verify_access_token(app, token, issuer_id)
        except TokenInvalid:
            return dict(INACTIVE)
        out = {"active": True, "token_type": "access_token"}
        for name in ("sub", "client_id", "scope", "exp", "iat", "iss", "aud", "jti", "sid", "org_id",
                     "organizations", "auth_time", "acr", "amr", "cnf"):
            if name in claims:
                out[name] = claims[name]
        out["username"] = claims.get("sub")
        return out
    if token.startswith("tok_"):
        return await _personal_token(app, issuer_id, token)
    if not token.startswith("rt_") or len(token) > 256:
        return dict(INACTIVE)
    async with app.state.db.sessionmaker() as session:
        row = await session.scalar(select(RefreshToken).where(
            RefreshToken.token_hash == tokens.token_hash(app.state.secret_key, "refresh", token)))
        grant = await session.get(OidcGrant, row.grant_id) if row is not None else None
    if (row is None or grant is None or grant.issuer_id != issuer_id or row.status != "active"
            or grant.status != "active" or row.expires_at <= now_ms()):
        return dict(INACTIVE)
    out = {"active": True, "token_type": "refresh_token", "sub": grant.user_id, "client_id": grant.client_id,
           "scope": grant.scope, "exp": row.expires_at // 1000, "iat": row.created_at // 1000}
    if grant.org_id:
        out["org_id"] = grant.org_id
    out["auth_time"] = grant.auth_time
    if grant.acr:
        out["acr"], out["amr"] = grant.acr, list(grant.amr)
    return out


async def _personal_token(app: Any, issuer_id: str, token: str) -> dict[str, Any]:
    """A user's personal access token (verified by the user-tokens package)."""

    async with app.state.db.sessionmaker() as session:
        principal = await verify_personal_token(session, token, server_key=app.state.secret_key)
    if principal is None or principal.issuer_id != issuer_id:
        return dict(INACTIVE)
    return {"active": True, "token_type": "personal_token", "sub": principal.user_id,
            "scope": " ".join(principal.scopes), "iss": issuer_id,
            "organizations": principal.extra.get("organizations", [])}


@router.post("/{issuer_id}/introspect", **docs.INTROSPECT)
async def introspect(issuer_id: str, request: Request) -> Response:
    """Is this token active, and what does it carry?"""
    keys = await key_set(request, issuer_id)
    if keys is None:
        return issuer_not_found()
    try:
        form = await read_form(request)
        caller = await authenticate_caller(request, issuer_id, keys.account_id, form.as_dict(),
                                           require_confidential=True)
        token = form.get("token")
        if not token:
            raise InvalidRequest("token is required")
        out = await introspect_token(request.app, issuer_id, token)
        if isinstance(caller, VerifiedAgent) and out.get("client_id") != caller.agent_id:
            out = dict(INACTIVE)  # an agent learns about its own tokens only
        return JSONResponse(out, headers=NO_STORE)
    except OAuthError as exc:
        return exc.response()
