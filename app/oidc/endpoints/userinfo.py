"""GET/POST /{issuer}/userinfo (OIDC Core §5.3): always includes `organizations`."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from app.oidc import dpop
from app.oidc import openapi as docs
from app.oidc.claims import load_active_user, organizations, profile_claims
from app.oidc.errors import NO_STORE, InvalidToken
from app.oidc.grants.common import select_org
from app.oidc.runtime import get_runtime
from app.oidc.tokens import TokenInvalid
from app.oidc.verify import verify_access_token

router = APIRouter()


def _bearer(request: Request) -> tuple[str, str]:
    """(scheme, access token): Bearer, or DPoP for a DPoP-bound token."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() not in ("bearer", "dpop") or not value.strip():
        raise InvalidToken("A Bearer access token is required")
    return scheme.lower(), value.strip()


def _refused(exc: dpop.ProofRefused) -> Response:
    error = "use_dpop_nonce" if exc.nonce else "invalid_dpop_proof"
    return JSONResponse({"error": error, "error_description": exc.description}, status_code=401,
                        headers={**NO_STORE, **dpop.resource_challenge(exc.description, error=error,
                                                                         nonce=exc.nonce)})


@router.get("/{issuer_id}/userinfo", **docs.USERINFO)
@router.post("/{issuer_id}/userinfo", **docs.USERINFO)
async def userinfo(issuer_id: str, request: Request) -> Response:
    """Claims about the token's subject."""
    try:
        scheme, token = _bearer(request)
        try:
            keys, claims = await verify_access_token(request.app, token, issuer_id)
        except TokenInvalid as exc:
            raise InvalidToken() from exc
        try:
            proof = dpop.check_resource_request(request, scheme, token, claims, keys.issuer_url + "/userinfo")
        except dpop.ProofRefused as exc:
            return _refused(exc)
        headers = {**NO_STORE, **dpop.checker(request.app).response_headers(proof)}
        sub = str(claims["sub"])
        if not sub.startswith("usr_"):
            # A client's own token: no user, no organizations.
            return JSONResponse({"sub": sub, "organizations": []}, headers=headers)
        rt = get_runtime(request)
        async with rt.session_factory()() as session:
            user = await load_active_user(session, keys.account_id, keys.issuer_id, sub)
            if user is None:
                raise InvalidToken("The user is not active")
            orgs = await organizations(session, keys.account_id, keys.issuer_id, sub)
        body = {"sub": sub, **profile_claims(user, set(str(claims.get("scope", "")).split())),
                "organizations": orgs}
        # How and when the user signed in, as the ID token says (auth_time, acr, amr).
        for name in ("auth_time", "acr", "amr"):
            if name in claims:
                body[name] = claims[name]
        org_id = select_org(orgs, claims.get("org_id"))
        if org_id:
            body["org_id"] = org_id
        return JSONResponse(body, headers=headers)
    except InvalidToken as exc:
        return exc.response()
