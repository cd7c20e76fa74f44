"""Device authorization (RFC 8628): `POST /{issuer}/device_authorization` for the device, and the
hosted verification page `/{issuer}/device` where the user enters the code, signs in through the
hosted login (every method and policy applies: the login returns here, see
app.hosted.pages.authorize_target) and approves or denies.

A user code is looked up only for a signed-in user, and every unknown code counts as a failure in
the shared failure throttle (kind `user_code`, per user and address, and per address).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel

from app.events.service import record
from app.hosted.pages import DEVICE_RETURN, REDIRECT_HEADERS, page_context
from app.hosted.policy import mfa_required, session_qualifies
from app.models.oidc import LoginSession
from app.oidc import openapi as docs
from app.oidc.client_auth import authenticate_client
from app.oidc.endpoints.token import read_form
from app.oidc.errors import NO_STORE, OAuthError, issuer_not_found
from app.oidc.grants import device_code
from app.oidc.pages import (
    csrf_cookie_name,
    csrf_ok,
    csrf_pair,
    message_page,
    render,
    same_origin,
    session_cookie_name,
    set_cookie,
    sign_return,
)
from app.oidc.runtime import get_runtime, key_set
from app.session.service import find_by_cookie
from app.signing_key.cache import KeySet

router = APIRouter()
USER_CODE = "user_code"  # the failure throttle's credential kind
TITLE = "Connect a device"


class DeviceAuthorizationResponse(BaseModel):
    """RFC 8628 §3.2."""

    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str
    expires_in: int
    interval: int


_S = {"type": "string"}
DEVICE_AUTHORIZATION: dict[str, Any] = {
    "response_model": DeviceAuthorizationResponse,
    "responses": {
        400: {"model": docs.OAuthErrorBody,
              "description": "invalid_request, invalid_scope, unauthorized_client"},
        401: {"model": docs.OAuthErrorBody, "description": "Client authentication failed (invalid_client)"},
        429: {"model": docs.OAuthErrorBody, "description": "Too many failed attempts"},
        404: {"model": docs.ErrorBody, "description": "No such issuer"}},
    "openapi_extra": {"requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {
        "schema": {"type": "object", "properties": {"client_id": _S, "client_secret": _S, "scope": _S}}}}}},
}
_HTML = {"text/html": {"schema": {"type": "string"}}}
DEVICE_PAGE: dict[str, Any] = {
    "response_class": HTMLResponse,
    "responses": {200: {"description": "The code form, or the approval form", "content": _HTML},
                  303: {"description": "To the hosted login first",
                        "headers": {"Location": {"schema": {"type": "string"}}}},
                  400: {"description": "An unknown or expired code (the form again)", "content": _HTML},
                  403: {"description": "The form expired (CSRF or Origin)", "content": _HTML},
                  404: {"description": "No such issuer (an HTML page)", "content": _HTML},
                  429: {"description": "Too many unknown codes", "content": _HTML}},
}


@router.post("/{issuer_id}/device_authorization", **DEVICE_AUTHORIZATION)
async def device_authorization(issuer_id: str, request: Request) -> Response:
    """Start a device authorization: a device code for the device, a user code for the user."""
    keys = await key_set(request, issuer_id)
    if keys is None:
        return issuer_not_found()
    settings = request.app.state.settings
    try:
        form = await read_form(request)
        client = await authenticate_client(request, issuer_id, form.as_dict())
        async with request.app.state.db.unit_of_work() as session:
            body = await device_code.start(session, keys, request.app.state.secret_key, client, form,
                                           ttl_seconds=settings.device_code_ttl_seconds,
                                           interval=settings.device_poll_interval_seconds)
    except OAuthError as exc:
        return exc.response()
    return JSONResponse(body, headers=NO_STORE)


async def _signed_in(session: Any, request: Request, keys: KeySet) -> LoginSession | None:
    """The issuer's login session of this browser, if it meets the issuer's sign-in policy."""
    login = await find_by_cookie(session, request.app.state.secret_key, keys.issuer_id,
                                 request.cookies.get(session_cookie_name(keys.issuer_id)))
    if login is None:
        return None
    required = await mfa_required(session, keys.account_id, keys.issuer_id, login.user_id)
    if not session_qualifies(login.authentication or {}, acr_values=None, required=required):
        return None
    return login


def _to_login(request: Request, keys: KeySet, user_code: str | None) -> Response:
    params = [DEVICE_RETURN] + ([("user_code", user_code)] if user_code else [])
    target = f"/{keys.issuer_id}/login?" + urlencode(
        {"return": sign_return(request.app.state.secret_key, keys.issuer_id, params)})
    return RedirectResponse(target, status_code=303, headers=dict(REDIRECT_HEADERS))


def _page(request: Request, keys: KeySet, ctx: dict[str, Any], *, status_code: int = 200,
          **context: Any) -> Response:
    cookie, token, fresh = csrf_pair(request, keys.issuer_id)
    context.setdefault("user_code", "")
    response = render("device.html", status_code, title=TITLE, action=f"/{keys.issuer_id}/device",
                      csrf=token, **ctx, **context)
    if fresh:
        set_cookie(response, request, csrf_cookie_name(keys.issuer_id), cookie, keys.issuer_id)
    return response


async def _throttled(request: Request, user_id: str) -> int | None:
    rt = get_runtime(request)
    return await rt.throttle.admit(USER_CODE, user_id, rt.address.of_scope(request.scope))


async def _unknown(request: Request, user_id: str) -> None:
    rt = get_runtime(request)
    await rt.throttle.failed(USER_CODE, user_id, rt.address.of_scope(request.scope))


def _too_many(request: Request, keys: KeySet, ctx: dict[str, Any], wait: int) -> Response:
    response = _page(request, keys, ctx, status_code=429, error="Too many attempts; try again later.")
    response.headers["Retry-After"] = str(wait)
    return response


@router.get("/{issuer_id}/device", **DEVICE_PAGE)
async def device_page(issuer_id: str, request: Request) -> Response:
    """The verification page: the code form, then (signed in) the approval form."""
    keys = await key_set(request, issuer_id)
    if keys is None:
        return message_page("Not found", "This sign-in address does not exist.", status_code=404)
    typed = request.query_params.get("user_code", "")[:32]
    normalized = device_code.normalize_user_code(typed)
    async with request.app.state.db.unit_of_work() as session:
        ctx = await page_context(session, request, keys, None)
        login = await _signed_in(session, request, keys)
        if login is None:
            return _to_login(request, keys, device_code.display_user_code(normalized) if normalized else None)
        if not typed:
            return _page(request, keys, ctx)
        wait = await _throttled(request, login.user_id)
        if wait is not None:
            return _too_many(request, keys, ctx, wait)
        row = None if normalized is None else await device_code.pending_by_user_code(
            session, keys, request.app.state.secret_key, normalized)
        if row is None:
            await _unknown(request, login.user_id)
            return _page(request, keys, ctx, status_code=400, user_code=typed,
                         error="This code is unknown, used or expired.")
        rt = get_runtime(request)
        client = await rt.clients.get(rt.session_factory(), issuer_id, row.client_id)
        return _page(request, keys, ctx, user_code=device_code.display_user_code(normalized or ""),
                     client_name=client.name if client is not None else row.client_id, scopes=row.scope)


@router.post("/{issuer_id}/device", **DEVICE_PAGE)
async def device_decide(issuer_id: str, request: Request) -> Response:
    """Approve or deny the device's request (once: the code then stops working)."""
    keys = await key_set(request, issuer_id)
    if keys is None:
        return message_page("Not found", "This sign-in address does not exist.", status_code=404)
    form = await request.form()
    typed = str(form.get("user_code") or "")[:32]
    action = str(form.get("action") or "")
    normalized = device_code.normalize_user_code(typed)
    public = request.app.state.settings.resolved_public_url()
    async with request.app.state.db.unit_of_work() as session:
        ctx = await page_context(session, request, keys, None)
        if not csrf_ok(request, issuer_id, str(form.get("csrf") or "")) or not same_origin(request, public):
            return message_page(TITLE, "This form expired; open the page again.", status_code=403, **ctx)
        login = await _signed_in(session, request, keys)
        if login is None:
            return _to_login(request, keys, typed if normalized else None)
        if action not in ("approve", "deny"):
            return _page(request, keys, ctx, status_code=400, user_code=typed,
                         error="Choose approve or deny.")
        wait = await _throttled(request, login.user_id)
        if wait is not None:
            return _too_many(request, keys, ctx, wait)
        row = None if normalized is None else await device_code.pending_by_user_code(
            session, keys, request.app.state.secret_key, normalized, lock=True)
        if row is None:
            await _unknown(request, login.user_id)
            return _page(request, keys, ctx, status_code=400, user_code=typed,
                         error="This code is unknown, used or expired.")
        approve = action == "approve"
        device_code.decide(row, login, approve)
        await record(session, type="auth.device.approved" if approve else "auth.device.denied",
                     account_id=keys.account_id, issuer_id=issuer_id, user_id=login.user_id,
                     client_id=row.client_id, subject={"type": "device_authorization", "id": row.id},
                     data={"client_id": row.client_id, "scope": row.scope, "session_id": login.id},
                     auth={"type": "user", "user_id": login.user_id, "issuer_id": issuer_id})
    if approve:
        return message_page(TITLE, "Your device is connected. You can return to it now.",
                            status_code=200, is_error=False, **ctx)
    return message_page(TITLE, "The request was denied. Your device will not be signed in.",
                        status_code=200, is_error=False, **ctx)
