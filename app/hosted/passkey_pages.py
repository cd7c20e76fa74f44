"""Passkey pages: sign-in as a first factor (usernameless), as the second factor, enrolment while
a policy demands a second factor, and enrolment by a signed-in user (/{issuer}/passkeys)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from app.core.errors import ApiError
from app.events.service import record
from app.hosted import flow
from app.hosted.pages import (
    _expired_page,
    _not_found,
    _same_origin,
    _second_factor_page,
    authorize_target,
    client_ip,
    page_context,
    session_response,
    sso_refusal,
)
from app.hosted.policy import disabled_methods, load_policy
from app.models.user import User
from app.oidc.claims import load_active_user
from app.oidc.errors import NO_STORE
from app.oidc.pages import (
    csrf_cookie_name,
    csrf_ok,
    csrf_pair,
    message_page,
    open_return,
    render,
    session_cookie_name,
    set_cookie,
)
from app.oidc.runtime import key_set
from app.session.service import find_by_cookie
from app.signing_key.cache import KeySet
from app.user import passkeys

router = APIRouter()
_SCRIPT = (Path(__file__).parent / "static" / "passkey.js").read_bytes()


def _json_error(message: str, status_code: int = 400) -> JSONResponse:
    return JSONResponse({"error": "passkey_refused", "message": message}, status_code=status_code,
                        headers=dict(NO_STORE))


def _rp(request: Request) -> tuple[str | None, str]:
    public = request.app.state.settings.resolved_public_url()
    return passkeys.rp_id_for(public), passkeys.origin_of(public)


@router.get("/{issuer_id}/login/passkey.js", include_in_schema=False)
async def passkey_script(issuer_id: str) -> Response:
    """The passkey ceremony's script (the pages' CSP allows scripts from this origin only)."""
    return Response(_SCRIPT, media_type="text/javascript",
                    headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"})


async def _refuse(session: Any, keys: KeySet, ip: str, reason: str, user_id: str | None = None,
                  verifier_id: str | None = None) -> None:
    await record(session, type="user.verification.failed", account_id=keys.account_id,
                 issuer_id=keys.issuer_id, user_id=user_id,
                 subject=({"type": "user", "id": user_id} if user_id
                          else {"type": "issuer", "id": keys.issuer_id}),
                 data={"method": "passkey", "reason": reason, "ip": ip,
                       **({"verifier_id": verifier_id} if verifier_id else {})},
                 auth=flow.event_auth(None, keys.issuer_id, ip))


@router.post("/{issuer_id}/login/passkey/options", include_in_schema=False)
async def passkey_options(issuer_id: str, request: Request) -> Response:
    """WebAuthn request options: usernameless for `mode=signin`, the user's passkeys for
    `mode=second_factor`. The challenge is kept on a pending sign-in (single use)."""
    keys = await key_set(request, issuer_id)
    if keys is None:
        return _json_error("Not found", 404)
    form = await request.form()
    rp_id, _ = _rp(request)
    server_key = request.app.state.secret_key
    if not csrf_ok(request, issuer_id, str(form.get("csrf") or "")) or not _same_origin(request):
        return _json_error("The form expired. Please try again.", 403)
    if rp_id is None:
        return _json_error("Passkeys need a domain name: this server is reached by an IP address.")
    async with request.app.state.db.unit_of_work() as session:
        if form.get("mode") == "second_factor":
            pending = await flow.find_pending(session, server_key, issuer_id,
                                              request.cookies.get(flow.pending_cookie_name(issuer_id)),
                                              ("second_factor",))
            user = await flow.load_user(session, pending) if pending else None
            if pending is None or user is None:
                return _json_error("This sign-in has expired. Sign in again.")
            options, pending.challenge = passkeys.authentication_options(
                rp_id, await passkeys.user_passkeys(session, user))
            return Response(options, media_type="application/json", headers=dict(NO_STORE))
        return_to = str(form.get("return") or "")
        if open_return(server_key, issuer_id, return_to) is None:
            return _json_error("This sign-in link is invalid or has expired.")
        if "passkey" in await disabled_methods(session, keys.account_id, issuer_id):
            return _json_error("Passkeys are turned off here.", 403)
        options, challenge = passkeys.authentication_options(rp_id, None)
        _, cookie = await flow.create_pending(session, server_key, account_id=keys.account_id,
                                              issuer_id=issuer_id, user_id=None, stage="passkey",
                                              methods=[], return_to=return_to)
        pending_row = await flow.find_pending(session, server_key, issuer_id, cookie, ("passkey",))
        assert pending_row is not None
        pending_row.challenge = challenge
    response = Response(options, media_type="application/json", headers=dict(NO_STORE))
    set_cookie(response, request, flow.pending_cookie_name(issuer_id), cookie, issuer_id,
               max_age=flow.PENDING_TTL_MS // 1000)
    return response


async def _assert(session: Any, request: Request, keys: KeySet, pending: Any, credential: str,
                  user_id: str | None, ip: str) -> tuple[Any, list[str]] | str:
    """Verify an assertion against the pending sign-in's challenge: (verifier, methods) or the
    refusal reason (recorded)."""
    rp_id, origin = _rp(request)
    challenge, pending.challenge = pending.challenge, None  # single use
    if rp_id is None or not challenge or not credential:
        await _refuse(session, keys, ip, "no_ceremony", user_id)
        return "no_ceremony"
    try:
        return await passkeys.authenticate(session, account_id=keys.account_id, issuer_id=keys.issuer_id,
                                           credential=credential[:20000], challenge=challenge,
                                           rp_id=rp_id, origin=origin, user_id=user_id)
    except passkeys.PasskeyRefused as exc:
        v = exc.verifier
        await _refuse(session, keys, ip, exc.reason, v.user_id if v else user_id, v.id if v else None)
        return exc.reason


@router.post("/{issuer_id}/login/passkey", include_in_schema=False)
async def passkey_sign_in(issuer_id: str, request: Request) -> Response:
    """A passkey as the first factor: usernameless, user verification required (two factors)."""
    form = await request.form()
    ip = client_ip(request)
    server_key = request.app.state.secret_key
    keys = await key_set(request, issuer_id)
    if keys is None:
        return _not_found()
    async with request.app.state.db.unit_of_work() as session:
        pending = await flow.find_pending(session, server_key, issuer_id,
                                          request.cookies.get(flow.pending_cookie_name(issuer_id)),
                                          ("passkey",))
        params = open_return(server_key, issuer_id, pending.return_to) if pending else None
        ctx = await page_context(session, request, keys, params)
        t = ctx["t"]
        if pending is None or params is None:
            return _expired_page(ctx)
        if not csrf_ok(request, issuer_id, str(form.get("csrf") or "")) or not _same_origin(request):
            return message_page(t("sign_in_error"), t("form_expired"), status_code=403, **ctx)
        if "passkey" in await disabled_methods(session, keys.account_id, issuer_id):
            await _refuse(session, keys, ip, "method_disabled")
            return message_page(t("sign_in_error"), t("passkey_disabled"), status_code=403, **ctx)
        result = await _assert(session, request, keys, pending, str(form.get("credential") or ""), None, ip)
        user = None
        if not isinstance(result, str):
            verifier, methods = result
            user = await load_active_user(session, keys.account_id, issuer_id, verifier.user_id)
        if user is not None:
            refused = await sso_refusal(session, request, keys, user, params, ip, "passkey")
            if refused is not None:
                return refused
        if user is None:
            failed = message_page(t("sign_in_error"), t("passkey_failed"), status_code=401, **ctx)
        else:
            await flow.drop_pending(session, pending)
            await record(session, type="user.verification.succeeded", account_id=keys.account_id,
                         issuer_id=issuer_id, user_id=user.id, subject={"type": "user", "id": user.id},
                         data={"method": "passkey", "verifier_id": verifier.id, "ip": ip},
                         auth=flow.event_auth(user.id, issuer_id, ip))
            _, cookie = await flow.start_session(session, request, account_id=keys.account_id,
                                                 issuer_id=issuer_id, user_id=user.id, methods=methods, ip=ip)
    if user is None:
        return failed
    return session_response(request, issuer_id, authorize_target(issuer_id, params), cookie)


@router.post("/{issuer_id}/login/passkey/second-factor", include_in_schema=False)
async def passkey_second_factor(issuer_id: str, request: Request) -> Response:
    """A passkey after the password (allowed even when the passkey method is disabled: an enrolled
    user is never weakened)."""
    form = await request.form()
    ip = client_ip(request)
    server_key = request.app.state.secret_key
    keys = await key_set(request, issuer_id)
    if keys is None:
        return _not_found()
    async with request.app.state.db.unit_of_work() as session:
        pending = await flow.find_pending(session, server_key, issuer_id,
                                          request.cookies.get(flow.pending_cookie_name(issuer_id)),
                                          ("second_factor",))
        user = await flow.load_user(session, pending) if pending else None
        params = open_return(server_key, issuer_id, pending.return_to) if pending else None
        ctx = await page_context(session, request, keys, params)
        t = ctx["t"]
        if pending is None or user is None or params is None:
            return _expired_page(ctx)
        if not csrf_ok(request, issuer_id, str(form.get("csrf") or "")) or not _same_origin(request):
            return message_page(t("sign_in_error"), t("form_expired"), status_code=403, **ctx)
        result = await _assert(session, request, keys, pending, str(form.get("credential") or ""),
                               user.id, ip)
        if isinstance(result, str):
            pending.attempts += 1
            policy = await load_policy(session, keys.account_id, issuer_id, user.id)
            return _second_factor_page(request, issuer_id, ctx, policy, status_code=401,
                                       error=t("passkey_failed"))
        verifier, methods = result
        await flow.drop_pending(session, pending)
        await flow.user_succeeded(session, keys.account_id, user.id)
        await record(session, type="user.mfa.verification.succeeded", account_id=keys.account_id,
                     issuer_id=issuer_id, user_id=user.id,
                     subject={"type": "verifier", "id": verifier.id, "user_id": user.id},
                     data={"verifier_type": "passkey", "method": "passkey"},
                     auth=flow.event_auth(user.id, issuer_id, ip))
        _, cookie = await flow.start_session(session, request, account_id=keys.account_id,
                                             issuer_id=issuer_id, user_id=user.id,
                                             methods=[*pending.methods, *methods], ip=ip)
    return session_response(request, issuer_id, authorize_target(issuer_id, params), cookie)


# ---- enrolment ---------------------------------------------------------------------------------

async def _registrant(session: Any, request: Request, keys: KeySet) -> tuple[User | None, Any, Any]:
    """Who is enrolling: (user, pending enrolment or None, login session or None). A sign-in that
    must enrol a second factor comes first; otherwise the signed-in user."""
    server_key = request.app.state.secret_key
    issuer_id = keys.issuer_id
    pending = await flow.find_pending(session, server_key, issuer_id,
                                      request.cookies.get(flow.pending_cookie_name(issuer_id)),
                                      ("enrol", "register"))
    if pending is not None and pending.stage == "enrol":
        return await flow.load_user(session, pending), pending, None
    login = await find_by_cookie(session, server_key, issuer_id,
                                 request.cookies.get(session_cookie_name(issuer_id)))
    if login is None:
        return None, pending, None
    user = await load_active_user(session, keys.account_id, issuer_id, login.user_id)
    return user, pending, login


@router.post("/{issuer_id}/login/passkey/register-options", include_in_schema=False)
async def register_options(issuer_id: str, request: Request) -> Response:
    """WebAuthn creation options (resident key and user verification required)."""
    keys = await key_set(request, issuer_id)
    if keys is None:
        return _json_error("Not found", 404)
    form = await request.form()
    server_key = request.app.state.secret_key
    rp_id, _ = _rp(request)
    if not csrf_ok(request, issuer_id, str(form.get("csrf") or "")) or not _same_origin(request):
        return _json_error("The form expired. Please try again.", 403)
    if rp_id is None:
        return _json_error("Passkeys need a domain name: this server is reached by an IP address.")
    new_cookie = None
    async with request.app.state.db.unit_of_work() as session:
        if "passkey" in await disabled_methods(session, keys.account_id, issuer_id):
            return _json_error("Passkeys are turned off here.", 403)
        user, pending, login = await _registrant(session, request, keys)
        if user is None:
            return _json_error("Sign in first.", 401)
        options, challenge = passkeys.registration_options(
            rp_id, keys.issuer_name or issuer_id, user, await passkeys.user_passkeys(session, user))
        if pending is None or pending.user_id != user.id:
            pending, new_cookie = await flow.create_pending(
                session, server_key, account_id=keys.account_id, issuer_id=issuer_id, user_id=user.id,
                stage="register", methods=[], return_to="")
        pending.challenge = challenge
    response = Response(options, media_type="application/json", headers=dict(NO_STORE))
    if new_cookie:
        set_cookie(response, request, flow.pending_cookie_name(issuer_id), new_cookie, issuer_id,
                   max_age=flow.PENDING_TTL_MS // 1000)
    return response


@router.post("/{issuer_id}/login/passkey/enrol", include_in_schema=False)
async def register_passkey(issuer_id: str, request: Request) -> Response:
    """Store the new passkey; a sign-in that had to enrol then continues to the application."""
    form = await request.form()
    ip = client_ip(request)
    keys = await key_set(request, issuer_id)
    if keys is None:
        return _not_found()
    rp_id, origin = _rp(request)
    async with request.app.state.db.unit_of_work() as session:
        user, pending, login = await _registrant(session, request, keys)
        params = open_return(request.app.state.secret_key, issuer_id, pending.return_to) if pending else None
        ctx = await page_context(session, request, keys, params)
        t = ctx["t"]
        if user is None or pending is None or not pending.challenge:
            return _expired_page(ctx)
        if not csrf_ok(request, issuer_id, str(form.get("csrf") or "")) or not _same_origin(request):
            return message_page(t("sign_in_error"), t("form_expired"), status_code=403, **ctx)
        if rp_id is None:
            return message_page(t("sign_in_error"), t("passkey_ip_host"), status_code=400, **ctx)
        if "passkey" in await disabled_methods(session, keys.account_id, issuer_id):
            await _refuse(session, keys, ip, "method_disabled", user.id)
            return message_page(t("sign_in_error"), t("passkey_disabled"), status_code=403, **ctx)
        challenge, pending.challenge = pending.challenge, None
        try:
            await passkeys.register(session, user, credential=str(form.get("credential") or "")[:20000],
                                    challenge=challenge, rp_id=rp_id, origin=origin,
                                    auth=flow.event_auth(user.id, issuer_id, ip))
        except ApiError:
            await _refuse(session, keys, ip, "registration_failed", user.id)
            return message_page(t("sign_in_error"), t("passkey_failed"), status_code=400, **ctx)
        enrolling = pending.stage == "enrol"
        await flow.drop_pending(session, pending)
        if enrolling and params is not None:
            _, cookie = await flow.start_session(
                session, request, account_id=keys.account_id, issuer_id=issuer_id, user_id=user.id,
                methods=[*pending.methods, "hwk", "user"], ip=ip)
        mine = await passkeys.user_passkeys(session, user)
    if enrolling and params is not None:
        return session_response(request, issuer_id, authorize_target(issuer_id, params), cookie)
    return _passkeys_page(request, issuer_id, ctx, mine, notice=t("passkey_created"))


def _passkeys_page(request: Request, issuer_id: str, ctx: dict[str, Any], mine: list[Any], *,
                   notice: str | None = None, error: str | None = None, can_register: bool = True,
                   status_code: int = 200) -> Response:
    cookie, token, fresh = csrf_pair(request, issuer_id)
    response = render("passkeys.html", status_code, title=ctx["t"]("passkeys_title"), csrf=token,
                      passkeys=mine, notice=notice, error=error, can_register=can_register,
                      issuer_id=issuer_id, **ctx)
    if fresh:
        set_cookie(response, request, csrf_cookie_name(issuer_id), cookie, issuer_id)
    return response


@router.get("/{issuer_id}/passkeys", include_in_schema=False)
async def passkeys_page(issuer_id: str, request: Request) -> Response:
    """A signed-in user's passkeys, and the button to create one."""
    keys = await key_set(request, issuer_id)
    if keys is None:
        return _not_found()
    rp_id, _ = _rp(request)
    async with request.app.state.db.unit_of_work() as session:
        ctx = await page_context(session, request, keys, None)
        t = ctx["t"]
        login = await find_by_cookie(session, request.app.state.secret_key, issuer_id,
                                     request.cookies.get(session_cookie_name(issuer_id)))
        user = await load_active_user(session, keys.account_id, issuer_id, login.user_id) if login else None
        if user is None:
            return message_page(t("sign_in_error"), t("passkey_after"), status_code=401, **ctx)
        mine = await passkeys.user_passkeys(session, user)
        disabled = "passkey" in await disabled_methods(session, keys.account_id, issuer_id)
    if rp_id is None:
        return _passkeys_page(request, issuer_id, ctx, mine, error=t("passkey_ip_host"), can_register=False)
    if disabled:
        return _passkeys_page(request, issuer_id, ctx, mine, error=t("passkey_disabled"), can_register=False)
    return _passkeys_page(request, issuer_id, ctx, mine)


