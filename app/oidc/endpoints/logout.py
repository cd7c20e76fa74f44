"""GET/POST /{issuer}/logout (OIDC RP-Initiated Logout 1.0): ends the issuer's login session and
redirects only to a post_logout_redirect_uri registered, exactly, for the client."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.models.oidc import LoginSession
from app.oidc import openapi as docs
from app.oidc.errors import redirect_with
from app.oidc.pages import clear_cookie, message_page, session_cookie_name
from app.oidc.runtime import get_runtime, key_set
from app.oidc.tokens import TokenInvalid
from app.oidc.verify import verify_jwt_for_issuer
from app.session.service import end_session, find_by_cookie

router = APIRouter()


@router.get("/{issuer_id}/logout", **docs.LOGOUT)
@router.post("/{issuer_id}/logout", **docs.LOGOUT)
async def logout(issuer_id: str, request: Request) -> Response:
    """Sign out of this issuer."""
    keys = await key_set(request, issuer_id)
    if keys is None:
        return message_page("Not found", "This address does not exist.", status_code=404)
    params = dict(request.query_params)
    if request.method == "POST":
        params.update({k: str(v) for k, v in (await request.form()).items()})
    rt = get_runtime(request)
    hint_claims: dict = {}
    if params.get("id_token_hint"):
        try:
            _, verified = await verify_jwt_for_issuer(request.app, params["id_token_hint"], issuer_id,
                                                      typ=None, allow_expired=True)
            hint_claims = verified.claims
        except TokenInvalid:
            return message_page("Sign-out error", "The id_token_hint is not valid.",
                                issuer_name=keys.issuer_name)
    client_id = params.get("client_id") or hint_claims.get("aud")
    if isinstance(client_id, list):
        client_id = client_id[0] if len(client_id) == 1 else None
    if params.get("client_id") and hint_claims and hint_claims.get("aud") not in (
            params["client_id"], [params["client_id"]]):
        return message_page("Sign-out error", "client_id does not match the id_token_hint.",
                            issuer_name=keys.issuer_name)
    redirect = params.get("post_logout_redirect_uri")
    if redirect:
        client = (await rt.clients.get(rt.session_factory(), issuer_id, client_id)
                  if isinstance(client_id, str) else None)
        if client is None or redirect not in client.post_logout_redirect_uris:
            return message_page("Sign-out error", "The post-logout redirect URI is not registered.",
                                issuer_name=keys.issuer_name)
    async with request.app.state.db.unit_of_work() as session:
        login = await find_by_cookie(session, request.app.state.secret_key, issuer_id,
                                     request.cookies.get(session_cookie_name(issuer_id)))
        if login is None and isinstance(hint_claims.get("sid"), str):
            candidate = await session.get(LoginSession, hint_claims["sid"])
            if (candidate is not None and candidate.issuer_id == issuer_id
                    and candidate.user_id == hint_claims.get("sub") and candidate.status == "active"):
                login = candidate
        if login is not None:
            await end_session(session, login, status="revoked", reason="logout", event="session.terminated",
                              auth={"type": "user", "user_id": login.user_id, "issuer_id": issuer_id})
    if redirect:
        state = {"state": params["state"]} if params.get("state") else {}
        response: Response = redirect_with(redirect, state)
    else:
        response = message_page("Signed out", "You are signed out.", issuer_name=keys.issuer_name,
                                status_code=200, is_error=False)
    clear_cookie(response, request, session_cookie_name(issuer_id), issuer_id)
    return response
