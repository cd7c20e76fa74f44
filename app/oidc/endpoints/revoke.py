"""POST /{issuer}/revoke (RFC 7009): 200 for every token, known or not, once the client is known."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from app.models.oidc import OidcGrant, RefreshToken, RevokedAccessToken
from app.oidc import openapi as docs
from app.oidc import tokens
from app.oidc.client_auth import authenticate_caller, caller_id
from app.oidc.endpoints.token import read_form
from app.oidc.errors import NO_STORE, InvalidRequest, OAuthError, issuer_not_found
from app.oidc.grants.common import revoke_grant
from app.oidc.runtime import get_runtime, key_set
from app.oidc.tokens import TokenInvalid
from app.oidc.verify import verify_jwt_for_issuer

router = APIRouter()


@router.post("/{issuer_id}/revoke", **docs.REVOKE)
async def revoke(issuer_id: str, request: Request) -> Response:
    """Revoke a refresh token (and its family) or an access token."""
    keys = await key_set(request, issuer_id)
    if keys is None:
        return issuer_not_found()
    rt = get_runtime(request)
    try:
        form = await read_form(request)
        # A client, or an agent revoking one of its own access tokens.
        caller = caller_id(await authenticate_caller(request, issuer_id, keys.account_id, form.as_dict()))
        token = form.get("token")
        if not token:
            raise InvalidRequest("token is required")
        hint = form.get("token_type_hint")
        async with request.app.state.db.unit_of_work() as session:
            if hint != "access_token" or token.startswith("rt_"):
                row = await session.scalar(select(RefreshToken).where(
                    RefreshToken.token_hash == tokens.token_hash(rt.app.state.secret_key, "refresh", token)))
                grant = await session.get(OidcGrant, row.grant_id) if row is not None else None
                # A token of another client is left alone (RFC 7009 §2.1), and still answered 200.
                if grant is not None and grant.client_id == caller and grant.issuer_id == issuer_id:
                    await revoke_grant(session, grant.account_id, grant.id, "revoked_by_client")
                    return Response(status_code=200, headers=NO_STORE)
            if token.count(".") == 2:
                try:
                    _, verified = await verify_jwt_for_issuer(request.app, token, issuer_id, typ="at+jwt")
                except TokenInvalid:
                    return Response(status_code=200, headers=NO_STORE)
                claims = verified.claims
                if claims.get("client_id") == caller and isinstance(claims.get("jti"), str):
                    await session.execute(insert(RevokedAccessToken).values(
                        jti=claims["jti"], account_id=keys.account_id, expires_at=int(claims["exp"]) * 1000
                    ).on_conflict_do_nothing())
        return Response(status_code=200, headers=NO_STORE)
    except OAuthError as exc:
        return exc.response()
