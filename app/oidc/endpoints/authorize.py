"""GET /{issuer}/authorize (RFC 6749 §4.1.1, OIDC Core §3.1.2): the code flow only.

Until the client and redirect URI are known to be valid, errors are a page and never a redirect
(RFC 6749 §4.1.2.1); after that they go to the redirect URI with `state` and `iss` (RFC 9207).
"""

from __future__ import annotations

import re
import time
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from app.core.ids import new_id, now_ms
from app.events.service import record
from app.hosted.policy import acr_for, amr_for, mfa_required, session_qualifies
from app.models.oidc import AuthorizationCode
from app.oidc import openapi as docs
from app.oidc import par, pkce, tokens
from app.oidc.claims import load_active_user, organizations
from app.oidc.client_auth import CachedClient
from app.oidc.errors import (
    NO_STORE,
    AccessDenied,
    ConsentRequired,
    InvalidRequest,
    InvalidScope,
    InvalidTarget,
    LoginRequired,
    OAuthError,
    UnauthorizedClient,
    UnsupportedResponseType,
    error_redirect,
    redirect_with,
)
from app.oidc.pages import message_page, session_cookie_name, sign_return
from app.oidc.runtime import get_runtime, key_set
from app.session.service import find_by_cookie
from app.signing_key.cache import KeySet

router = APIRouter()
SINGLE = ("client_id", "redirect_uri", "response_type", "scope", "state", "nonce", "code_challenge",
          "code_challenge_method", "prompt", "max_age", "org", "response_mode", "login_hint",
          "acr_values", "ui_locales")


# Bounds on what an authorization request may carry. It travels on into the signed login link and
# back to the client (state), so oversize values are refused with a page, never carried or echoed.
MAX_QUERY_BYTES = 8 * 1024
MAX_PARAMS = 40
MAX_VALUE = {"state": 1024, "nonce": 512, "login_hint": 320, "client_id": 64, "code_challenge": 128,
             "code_challenge_method": 16, "response_type": 32, "response_mode": 32, "prompt": 64,
             "max_age": 16, "org": 64, "scope": 2048, "redirect_uri": 2048, "resource": 2048}
DEFAULT_MAX_VALUE = 2048


def oversize(query: bytes, pairs: list[tuple[str, str]]) -> bool:
    return (len(query) > MAX_QUERY_BYTES or len(pairs) > MAX_PARAMS
            or any(len(value) > MAX_VALUE.get(name, DEFAULT_MAX_VALUE) for name, value in pairs))


_LOOPBACK = re.compile(r"^http://(127\.0\.0\.1|\[::1\])(?::(\d{1,5}))?(/[^#]*)?$")


def redirect_uri_matches(registered: list[str], candidate: str) -> bool:
    """Exact string match, except that a loopback IP redirect may use any port (RFC 8252 §7.3):
    scheme, host, path and query must still be byte-identical."""
    if candidate in registered:
        return True
    cand = _LOOPBACK.match(candidate)
    if cand is None:
        return False
    for uri in registered:
        reg = _LOOPBACK.match(uri)
        if (reg is not None and reg.group(1) == cand.group(1)
                and (reg.group(3) or "") == (cand.group(3) or "")):
            return True
    return False


def _resource_ok(value: str) -> bool:
    parts = urlsplit(value)
    return bool(parts.scheme) and bool(parts.netloc) and "#" not in value and len(value) <= 2048


def validate_request(client: CachedClient, params: dict[str, str], resources: list[str]) -> list[str]:
    """The scopes to grant; raises the OAuth error to send back to the client."""
    if params.get("request") or params.get("request_uri"):
        raise OAuthError("Request objects are not supported")
    if params.get("response_type") != "code":
        raise UnsupportedResponseType("Only response_type=code is supported")
    if "authorization_code" not in client.grant_types:
        raise UnauthorizedClient("This client may not use the authorization code flow")
    if params.get("response_mode") not in (None, "query"):
        raise InvalidRequest("Only response_mode=query is supported")
    scopes = [s for s in (params.get("scope") or "").split(" ") if s]
    if not scopes:
        raise InvalidScope("scope is required")
    outside = [s for s in scopes if s not in client.scopes]
    if outside:
        raise InvalidScope(f"Scopes not allowed for this client: {' '.join(outside)}")
    err = pkce.challenge_error(params.get("code_challenge"), params.get("code_challenge_method"))
    if err:
        raise InvalidRequest(err)
    prompt = set((params.get("prompt") or "").split())
    if "none" in prompt and len(prompt) > 1:
        raise InvalidRequest("prompt=none cannot be combined with other values")
    if "none" in prompt and client.registration == "dynamic":
        # A self-registered client is a third party: it never gets a code without the user's
        # interaction (there is no consent page yet to have recorded a consent).
        raise ConsentRequired("prompt=none is not available to dynamically registered clients")
    if "max_age" in params and not (params["max_age"].isdigit() and len(params["max_age"]) < 10):
        raise InvalidRequest("max_age must be a non-negative integer")
    if len(params.get("nonce") or "") > 512:
        raise InvalidRequest("nonce is too long")
    if any(not _resource_ok(r) for r in resources) or len(resources) > 10:
        raise InvalidTarget("resource must be an absolute URI without a fragment")
    if client.default_resources is not None and resources and client.default_resources:
        outside_res = [r for r in resources if r not in client.default_resources]
        if outside_res:
            raise InvalidTarget("resource is not allowed for this client")
    return list(dict.fromkeys(scopes))


@router.get("/{issuer_id}/authorize", **docs.AUTHORIZE)
async def authorize(issuer_id: str, request: Request) -> Response:
    """Start (or silently continue) a sign-in and send an authorization code to the client."""
    keys = await key_set(request, issuer_id)
    if keys is None:
        return message_page("Not found", "This sign-in address does not exist.", status_code=404)
    rt = get_runtime(request)
    pairs = list(request.query_params.multi_items())
    if oversize(request.scope.get("query_string", b""), pairs):
        return message_page("Sign-in error", "This sign-in request is too large.", status_code=400,
                            issuer_name=keys.issuer_name)
    pushed = False
    query = dict(pairs)
    if "request_uri" in query:
        # PAR (RFC 9126): the pushed request replaces the query, once (app.oidc.par).
        async with request.app.state.db.unit_of_work() as session:
            stored = await par.consume(session, rt.server_key, account_id=keys.account_id,
                                       issuer_id=issuer_id, client_id=query.get("client_id", ""),
                                       request_uri=query["request_uri"])
        if stored is None or len(pairs) != len(query):
            return message_page("Sign-in error", "This sign-in request has expired or was already used.",
                                status_code=400, issuer_name=keys.issuer_name)
        pairs = [*stored, par.mark(rt.server_key, stored)]
        pushed = True
    elif par.MARK in query:
        pushed = par.marked(rt.server_key, pairs)
    params: dict[str, str] = {}
    resources: list[str] = []
    duplicated = False
    for name, value in pairs:
        if name == "resource":
            resources.append(value)
        elif name in params:
            duplicated = True
        else:
            params[name] = value
    client_id = params.get("client_id", "")
    client = (await rt.clients.get(rt.session_factory(), issuer_id, client_id)
              if client_id.startswith("c_") and len(client_id) <= 40 else None)
    if client is None:
        return message_page("Sign-in error", "The application (client_id) is not known here.")
    redirect_uri = params.get("redirect_uri", "")
    if duplicated or not redirect_uri or not redirect_uri_matches(client.redirect_uris, redirect_uri):
        return message_page("Sign-in error", "The redirect URI is not registered for this application.")
    state = params.get("state")
    try:
        if client.require_par and not pushed:
            raise InvalidRequest("This client must push its authorization requests (PAR)")
        scopes = validate_request(client, params, resources)
        return await _continue(request, keys, client, params, resources, scopes, pairs)
    except OAuthError as exc:
        return error_redirect(redirect_uri, exc, state=state, iss=keys.issuer_url)


async def _continue(request: Request, keys: KeySet, client: CachedClient, params: dict[str, str],
                    resources: list[str], scopes: list[str], pairs: list[tuple[str, str]]) -> Response:
    issuer_id = keys.issuer_id
    server_key = request.app.state.secret_key
    prompt = set((params.get("prompt") or "").split())
    async with request.app.state.db.unit_of_work() as session:
        login = await find_by_cookie(session, server_key, issuer_id,
                                     request.cookies.get(session_cookie_name(issuer_id)))
        too_old = (login is not None and "max_age" in params
                   and time.time() - login.auth_time > int(params["max_age"]))
        # The session must also meet the second-factor policy and the client's acr_values: a
        # password-only session never yields a code for an mfa_required issuer or organization.
        weak = login is not None and not session_qualifies(
            login.authentication or {}, acr_values=params.get("acr_values"),
            required=await mfa_required(session, keys.account_id, issuer_id, login.user_id))
        if login is None or "login" in prompt or too_old or weak:
            if login is not None and (too_old or weak):
                await record(session, type="auth.flow.expired" if too_old else "user.verification.failed",
                             account_id=keys.account_id, issuer_id=issuer_id, user_id=login.user_id,
                             client_id=client.id, subject={"type": "session", "id": login.id},
                             data={"step": "authorize", "client_id": client.id,
                                   "reason": "max_age" if too_old else "second_factor_required",
                                   "prompt": params.get("prompt") or ""},
                             auth={"type": "user", "user_id": login.user_id, "issuer_id": issuer_id})
            if "none" in prompt:
                # Returned, not raised: the event above commits with the answer.
                return error_redirect(params["redirect_uri"], LoginRequired(
                    "The user must sign in again" if login is not None else "The user is not signed in"),
                    state=params.get("state"), iss=keys.issuer_url)
            # Back from the login page the request is repeated without prompt=login or max_age:
            # that sign-in is fresh.
            again = [(k, v) for k, v in pairs
                     if k != "max_age" and (k != "prompt" or "login" not in v.split())]
            hint = params.get("login_hint", "")
            target = f"/{issuer_id}/login?" + urlencode(
                {"return": sign_return(server_key, issuer_id, again), **({"hint": hint} if hint else {})})
            return RedirectResponse(target, status_code=302, headers=NO_STORE)
        user = await load_active_user(session, keys.account_id, issuer_id, login.user_id)
        if user is None:
            raise AccessDenied("The user is not active")
        org_id = params.get("org")
        if org_id:
            orgs = await organizations(session, keys.account_id, issuer_id, user.id)
            if not any(o.get("id") == org_id for o in orgs):
                raise AccessDenied("The user is not a member of the requested organization")
        code = tokens.opaque_token("ac")
        now = now_ms()
        amr = (login.authentication or {}).get("amr") or amr_for((login.authentication or {}).get("methods")
                                                                 or ["pwd"])
        acr = (login.authentication or {}).get("acr") or acr_for(amr)
        session.add(AuthorizationCode(
            id=new_id("ac"), code_hash=tokens.token_hash(server_key, "code", code),
            account_id=keys.account_id, issuer_id=issuer_id, client_id=client.id, user_id=user.id,
            session_id=login.id, redirect_uri=params["redirect_uri"], scope=" ".join(scopes),
            nonce=params.get("nonce"), code_challenge=params["code_challenge"], org_id=org_id,
            resources=resources, auth_time=login.auth_time, amr=amr, acr=acr, created_at=now,
            expires_at=now + tokens.CODE_TTL_MS))
        login.last_activity_at = now
    out = {"code": code}
    if params.get("state") is not None:
        out["state"] = params["state"]
    out["iss"] = keys.issuer_url
    return redirect_with(params["redirect_uri"], out)
