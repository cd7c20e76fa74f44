"""Verifying access tokens for userinfo, introspection and the admin API's Bearer credentials."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from sqlalchemy import text

from app.core.auth import Principal
from app.core.errors import Unauthorized
from app.oidc import dpop, tokens
from app.oidc.runtime import runtime
from app.oidc.tokens import TokenInvalid, VerifiedToken
from app.signing_key.cache import KeySet

_REVOCATION_SQL = text(
    "SELECT (SELECT status FROM oidc_grants WHERE id = :gid AND account_id = :acc) AS grant_status, "
    "EXISTS (SELECT 1 FROM revoked_access_tokens WHERE jti = :jti AND account_id = :acc) AS revoked")
_AGENT_ACTIVE_SQL = text(
    "SELECT EXISTS (SELECT 1 FROM agents WHERE id = :id AND issuer_id = :iid AND account_id = :acc "
    "AND status = 'active')")


async def verify_jwt_for_issuer(app: Any, token: str, issuer_id: str | None, *, typ: str | None,
                                allow_expired: bool = False) -> tuple[KeySet, VerifiedToken]:
    """Signature, algorithm, issuer and expiry; `issuer_id` None means any issuer of this server."""
    rt = runtime(app)
    _, payload = tokens.peek(token)
    iid = tokens.issuer_id_from_iss(payload.get("iss"), rt.keys.public_url)
    if iid is None or (issuer_id is not None and iid != issuer_id):
        raise TokenInvalid("wrong issuer")
    keys = await rt.keys.get(rt.session_factory(), iid)
    if keys is None:
        raise TokenInvalid("unknown issuer")
    try:
        return keys, tokens.verify_jwt(token, keys, typ=typ, allow_expired=allow_expired)
    except TokenInvalid as exc:
        if str(exc) != "unknown key":
            raise
    keys = await rt.keys.reload_for_kid(rt.session_factory(), iid)
    if keys is None:
        raise TokenInvalid("unknown issuer")
    return keys, tokens.verify_jwt(token, keys, typ=typ, allow_expired=allow_expired)


async def verify_access_token(app: Any, token: str, issuer_id: str | None = None
                              ) -> tuple[KeySet, dict[str, Any]]:
    """A live access token's claims: signed by the issuer, unexpired, its client, grant and token
    not revoked. Raises TokenInvalid."""
    keys, verified = await verify_jwt_for_issuer(app, token, issuer_id, typ="at+jwt")
    claims = verified.claims
    rt = runtime(app)
    client_id = claims.get("client_id")
    agent = isinstance(client_id, str) and client_id.startswith("agt_")
    if not agent and (not isinstance(client_id, str) or await rt.clients.get(
            rt.session_factory(), keys.issuer_id, client_id) is None):
        raise TokenInvalid("client not active")
    gid = claims.get("gid")
    async with rt.session_factory()() as session:
        # An agent's token (client_id = its `agt_` id) dies with the agent's suspension or deletion.
        if agent and not await session.scalar(_AGENT_ACTIVE_SQL, {
                "id": client_id, "iid": keys.issuer_id, "acc": keys.account_id}):
            raise TokenInvalid("agent not active")
        row = (await session.execute(_REVOCATION_SQL, {"gid": gid if isinstance(gid, str) else "",
                                                       "acc": keys.account_id,
                                                       "jti": str(claims.get("jti", ""))})).one()
    if row.revoked or (gid is not None and row.grant_status != "active"):
        raise TokenInvalid("revoked")
    return keys, claims


def _bearer_scopes(claims: dict[str, Any]) -> tuple[str, ...]:
    oidc = {"openid", "profile", "email", "offline_access"}
    return tuple(s for s in str(claims.get("scope", "")).split() if s not in oidc)


async def verify_bearer(request: Request, token: str) -> Principal:
    """The admin API's Bearer verifier: an issuer's access token (registered on app.state.verifiers)."""
    try:
        keys, claims = await verify_access_token(request.app, token)
    except TokenInvalid as exc:
        raise Unauthorized("Invalid or expired access token") from exc
    scheme = request.headers.get("authorization", "").partition(" ")[0].lower()
    try:
        dpop.check_resource_request(request, scheme, token, claims,
                                    runtime(request.app).keys.public_url + request.url.path)
    except dpop.ProofRefused as exc:
        raise Unauthorized(exc.description, headers=dpop.resource_challenge(
            exc.description, error="use_dpop_nonce" if exc.nonce else "invalid_dpop_proof",
            nonce=exc.nonce)) from exc
    sub = str(claims.get("sub"))
    orgs = claims.get("organizations") or []
    return Principal(
        type="user" if sub.startswith("usr_") else "client",
        account_id=keys.account_id,
        account_level=False,
        user_id=sub if sub.startswith("usr_") else None,
        issuer_id=keys.issuer_id,
        org_id=claims.get("org_id"),
        scopes=_bearer_scopes(claims),
        extra={"organizations": [{"org_id": o.get("id"), "scopes": list(o.get("scopes") or [])}
                                 for o in orgs if isinstance(o, dict)],
               "client_id": claims.get("client_id")},
    )
