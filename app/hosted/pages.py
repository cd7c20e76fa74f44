"""Hosted sign-in steps after the password: the second factor, and enrolment when a policy demands
a second factor the user does not have yet. Every page works without JavaScript."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlencode

import segno
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.ids import now_ms
from app.events.service import record
from app.hosted import flow
from app.hosted.branding import load_brand
from app.hosted.i18n import choose_locale, translator
from app.hosted.policy import ACR_1FA, ACR_PHR, Policy, load_policy, requested_acr
from app.identity import service as identities
from app.models.user import User
from app.models.user_verifier import UserVerifier
from app.oidc.errors import NO_STORE
from app.oidc.pages import (
    SECURITY_HEADERS,
    clear_cookie,
    csrf_cookie_name,
    csrf_ok,
    csrf_pair,
    message_page,
    open_return,
    render,
    same_origin,
    session_cookie_name,
    set_cookie,
    sign_return,
)
from app.oidc.runtime import get_runtime, key_set
from app.session.service import SESSION_TTL_MS
from app.signing_key.cache import KeySet
from app.user.verifiers import complete_totp, enrollment_view, start_totp

router = APIRouter()
REDIRECT_HEADERS = {**NO_STORE, **{k: v for k, v in SECURITY_HEADERS.items()
                                   if k not in ("Cache-Control", "Pragma")}}


def client_ip(request: Request) -> str:
    """The client's address as the runtime kit resolves it (trusted proxies only)."""
    return get_runtime(request).address.of_scope(request.scope)


def param(params: list[tuple[str, str]] | None, name: str) -> str | None:
    for k, v in params or []:
        if k == name:
            return v
    return None


async def page_context(session: AsyncSession, request: Request, keys: KeySet,
                       params: list[tuple[str, str]] | None) -> dict[str, Any]:
    """What every hosted page needs: the message catalog and the branding."""
    locale = choose_locale(param(params, "ui_locales") or request.query_params.get("ui_locales"),
                           request.headers.get("accept-language"))
    brand = await load_brand(session, account_id=keys.account_id, issuer_id=keys.issuer_id,
                             issuer_name=keys.issuer_name or keys.issuer_id, org_id=param(params, "org"))
    return {"t": translator(locale), "locale": locale, "brand": brand, "issuer_name": brand.name}


def _same_origin(request: Request) -> bool:
    return same_origin(request, request.app.state.settings.resolved_public_url())


# A sign-in started by the device verification page (RFC 8628) carries this first parameter and
# goes back there instead of to /authorize.
DEVICE_RETURN = ("_next", "device")


def authorize_target(issuer_id: str, params: list[tuple[str, str]]) -> str:
    """Where a finished sign-in continues: the authorization request, or the device page."""
    if params and tuple(params[0]) == DEVICE_RETURN:
        return f"/{issuer_id}/device?" + urlencode(params[1:])
    return f"/{issuer_id}/authorize?" + urlencode(params)


def _redirect(target: str) -> RedirectResponse:
    return RedirectResponse(target, status_code=303, headers=dict(REDIRECT_HEADERS))


def session_response(request: Request, issuer_id: str, target: str, cookie: str,
                     device_cookie: str | None = None) -> RedirectResponse:
    response = _redirect(target)
    set_cookie(response, request, session_cookie_name(issuer_id), cookie, issuer_id,
               max_age=SESSION_TTL_MS // 1000)
    clear_cookie(response, request, flow.pending_cookie_name(issuer_id), issuer_id)
    if device_cookie:
        set_cookie(response, request, flow.device_cookie_name(issuer_id), device_cookie, issuer_id,
                   max_age=flow.DEVICE_TTL_MS // 1000)
    return response


def _needs_passkey(params: list[tuple[str, str]]) -> bool:
    return requested_acr(param(params, "acr_values")) == ACR_PHR


def link_cookie_name(issuer_id: str) -> str:
    """The browser's pending link of an upstream identity, waiting for its own sign-in."""
    return f"authpi_link_{issuer_id}"


async def sso_refusal(session: AsyncSession, request: Request, keys: KeySet, user: User,
                      params: list[tuple[str, str]], ip: str, method: str,
                      via_org: str | None = None) -> Response | None:
    """A user of an organization with `sso_only` signs in through that organization's connection
    only: any other method is refused, saying so (and nothing is created)."""
    org = await identities.sso_only_organization(session, user)
    if org is None or org.id == via_org:
        return None
    await record(session, type="user.verification.failed", account_id=keys.account_id,
                 issuer_id=keys.issuer_id, user_id=user.id, subject={"type": "user", "id": user.id},
                 data={"method": method, "reason": "sso_required", "org_id": org.id, "ip": ip},
                 auth=flow.event_auth(None, keys.issuer_id, ip))
    ctx = await page_context(session, request, keys, params)
    t = ctx["t"]
    return render("message.html", 403, title=t("sign_in_error"), is_error=True,
                  message=t("sso_required", name=org.name or org.id),
                  action_url=f"/{keys.issuer_id}/login/federated/{org.id}?"
                             + urlencode({"return": sign_return(request.app.state.secret_key,
                                                                keys.issuer_id, params)}),
                  action_label=t("continue_sso"), **ctx)


async def link_pending_identity(session: AsyncSession, request: Request, keys: KeySet, user: User
                                ) -> bool:
    """The user just proved this account with its own sign-in: link the upstream identity that was
    waiting in this browser (`user.sso.linked`). True when one was linked."""
    pending = await flow.find_pending(session, request.app.state.secret_key, keys.issuer_id,
                                      request.cookies.get(link_cookie_name(keys.issuer_id)), ("link",))
    if pending is None:
        return False
    data = pending.data
    await flow.drop_pending(session, pending)
    assertion = identities.Assertion(subject=str(data["subject"]), email=data.get("email"),
                                     email_verified=False)
    if await identities.find_identity(session, account_id=keys.account_id, issuer_id=keys.issuer_id,
                                      source_id=str(data["source_id"]), subject=assertion.subject):
        return False
    await identities.link(session, user, source_type=str(data["source_type"]),
                          source_id=str(data["source_id"]), assertion=assertion, via="own_sign_in")
    return True


async def after_password(session: AsyncSession, request: Request, keys: KeySet, user: User,
                         return_to: str, params: list[tuple[str, str]], ip: str) -> Response:
    """The password was right: refuse it for an `sso_only` organization's user; link an upstream
    identity waiting for this proof; then finish as after any first factor."""
    refused = await sso_refusal(session, request, keys, user, params, ip, "password")
    if refused is not None:
        return refused
    linked = await link_pending_identity(session, request, keys, user)
    response = await after_first_factor(session, request, keys, user, return_to, params, ip, ["pwd"])
    if linked:
        clear_cookie(response, request, link_cookie_name(keys.issuer_id), keys.issuer_id)
    return response


async def after_first_factor(session: AsyncSession, request: Request, keys: KeySet, user: User,
                             return_to: str, params: list[tuple[str, str]], ip: str,
                             methods: list[str]) -> Response:
    """The first factor was right: finish the sign-in, or ask for (or enrol) the second factor."""
    issuer_id = keys.issuer_id
    server_key = request.app.state.secret_key
    policy = await load_policy(session, keys.account_id, issuer_id, user.id)
    wanted = requested_acr(param(params, "acr_values"))
    explicit = wanted not in (None, ACR_1FA)
    needs = policy.has_second_factor or policy.mfa_required or explicit
    device = None
    if needs and not explicit:
        device = await flow.match_device(session, server_key, user,
                                         request.cookies.get(flow.device_cookie_name(issuer_id)))
    if not needs or device is not None:
        _, cookie = await flow.start_session(session, request, account_id=keys.account_id,
                                             issuer_id=issuer_id, user_id=user.id, methods=methods, ip=ip,
                                             trusted_device=device.id if device else None)
        return session_response(request, issuer_id, authorize_target(issuer_id, params), cookie)
    usable = policy.passkeys if _needs_passkey(params) else (policy.totp or policy.passkeys)
    stage = "second_factor" if usable else "enrol"
    _, cookie = await flow.create_pending(session, server_key, account_id=keys.account_id,
                                          issuer_id=issuer_id, user_id=user.id, stage=stage,
                                          methods=methods, return_to=return_to)
    response = _redirect(f"/{issuer_id}/login/{'second-factor' if usable else 'enrol'}")
    set_cookie(response, request, flow.pending_cookie_name(issuer_id), cookie, issuer_id,
               max_age=flow.PENDING_TTL_MS // 1000)
    return response


async def _start(request: Request, issuer_id: str, stages: tuple[str, ...], session: AsyncSession
                 ) -> tuple[KeySet | None, Any, User | None, list[tuple[str, str]] | None]:
    keys = await key_set(request, issuer_id)
    if keys is None:
        return None, None, None, None
    pending = await flow.find_pending(session, request.app.state.secret_key, issuer_id,
                                      request.cookies.get(flow.pending_cookie_name(issuer_id)), stages)
    if pending is None:
        return keys, None, None, None
    user = await flow.load_user(session, pending)
    params = open_return(request.app.state.secret_key, issuer_id, pending.return_to)
    return keys, pending, user, params


def _expired_page(ctx: dict[str, Any]) -> Response:
    t = ctx["t"]
    return message_page(t("sign_in_error"), t("expired"), status_code=400, **ctx)


def _not_found() -> Response:
    return message_page("Not found", "This sign-in address does not exist.", status_code=404)


def _second_factor_page(request: Request, issuer_id: str, ctx: dict[str, Any], policy: Policy | None, *,
                        error: str | None = None, status_code: int = 200, passkey_only: bool = False
                        ) -> Response:
    cookie, token, fresh = csrf_pair(request, issuer_id)
    t = ctx["t"]
    response = render("second_factor.html", status_code, title=t("second_factor"),
                      action=f"/{issuer_id}/login/second-factor", csrf=token, error=error,
                      show_totp=not passkey_only and bool(policy and policy.totp),
                      show_passkey=bool(policy and policy.passkeys), issuer_id=issuer_id, **ctx)
    if fresh:
        set_cookie(response, request, csrf_cookie_name(issuer_id), cookie, issuer_id)
    return response


@router.get("/{issuer_id}/login/second-factor", include_in_schema=False)
async def second_factor_page(issuer_id: str, request: Request) -> Response:
    """Ask for the code (or a passkey)."""
    async with request.app.state.db.unit_of_work() as session:
        keys, pending, user, params = await _start(request, issuer_id, ("second_factor",), session)
        if keys is None:
            return _not_found()
        ctx = await page_context(session, request, keys, params)
        if pending is None or user is None or params is None:
            return _expired_page(ctx)
        policy = await load_policy(session, keys.account_id, issuer_id, user.id)
    return _second_factor_page(request, issuer_id, ctx, policy, passkey_only=_needs_passkey(params))


@router.post("/{issuer_id}/login/second-factor", include_in_schema=False)
async def second_factor_submit(issuer_id: str, request: Request) -> Response:
    """Check a TOTP or backup code; wrong codes count per sign-in, per user and per address."""
    form = await request.form()
    server_key = request.app.state.secret_key
    ip = client_ip(request)
    async with request.app.state.db.unit_of_work() as session:
        keys, pending, user, params = await _start(request, issuer_id, ("second_factor",), session)
        if keys is None:
            return _not_found()
        ctx = await page_context(session, request, keys, params)
        t = ctx["t"]
        if pending is None or user is None or params is None:
            return _expired_page(ctx)
        if not csrf_ok(request, issuer_id, str(form.get("csrf") or "")) or not _same_origin(request):
            return message_page(t("sign_in_error"), t("form_expired"), status_code=403, **ctx)
        policy = await load_policy(session, keys.account_id, issuer_id, user.id)
        wait = max(await flow.second_factor_wait(request, user.id, ip),
                   await flow.user_wait_seconds(session, keys.account_id, user.id))
        if wait:
            await record(session, type="auth.flow.rate-limited", account_id=keys.account_id,
                         issuer_id=issuer_id, user_id=user.id, subject={"type": "user", "id": user.id},
                         data={"step": "second_factor", "retry_after": wait, "ip": ip},
                         auth=flow.event_auth(None, issuer_id, ip))
            response = _second_factor_page(request, issuer_id, ctx, policy, status_code=429,
                                           error=t("wait", seconds=wait))
            response.headers["Retry-After"] = str(wait)
            return response
        if _needs_passkey(params):
            return _second_factor_page(request, issuer_id, ctx, policy, status_code=400,
                                       error=t("passkey_failed"), passkey_only=True)
        used = await flow.check_code(session, server_key, user, str(form.get("code") or ""))
        if used is None:
            pending.attempts += 1
            await flow.user_failed(session, keys.account_id, issuer_id, user.id)
            await flow.second_factor_failed(request, user.id, ip)
            await record(session, type="user.verification.failed", account_id=keys.account_id,
                         issuer_id=issuer_id, user_id=user.id, subject={"type": "user", "id": user.id},
                         data={"method": "totp", "reason": "invalid_code", "attempt": pending.attempts,
                               "ip": ip}, auth=flow.event_auth(None, issuer_id, ip))
            if pending.attempts >= flow.MAX_ATTEMPTS:
                await flow.drop_pending(session, pending)
                await record(session, type="auth.flow.expired", account_id=keys.account_id,
                             issuer_id=issuer_id, user_id=user.id, subject={"type": "user", "id": user.id},
                             data={"step": "second_factor", "reason": "too_many_attempts", "ip": ip},
                             auth=flow.event_auth(None, issuer_id, ip))
                response = message_page(t("sign_in_error"), t("start_again"), status_code=401, **ctx)
                clear_cookie(response, request, flow.pending_cookie_name(issuer_id), issuer_id)
                return response
            return _second_factor_page(request, issuer_id, ctx, policy, status_code=401, error=t("bad_code"))
        await flow.user_succeeded(session, keys.account_id, user.id)
        await flow.second_factor_succeeded(request, user.id, ip)
        await flow.drop_pending(session, pending)
        device_cookie = None
        if form.get("trust") in ("on", "1", "true", "yes"):
            _, device_cookie = await flow.trust_this_device(session, server_key, user,
                                                            request.headers.get("user-agent"))
        _, cookie = await flow.start_session(session, request, account_id=keys.account_id,
                                             issuer_id=issuer_id, user_id=user.id,
                                             methods=[*pending.methods, "otp"], ip=ip)
    return session_response(request, issuer_id, authorize_target(issuer_id, params), cookie, device_cookie)


# ---- enrolment when a second factor is required -----------------------------------------------

def qr_data_uri(uri: str) -> str:
    svg = segno.make(uri, error="m").svg_inline(scale=4, omitsize=False)
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


async def _enrolment(session: AsyncSession, request: Request, pending: Any, user: User,
                     issuer_name: str) -> dict[str, Any]:
    """The pending TOTP verifier of this sign-in: made once, shown again on reload."""
    server_key = request.app.state.secret_key
    enrolment_id = pending.data.get("totp_enrollment_id")
    if enrolment_id:
        v = await session.scalar(select(UserVerifier).where(
            UserVerifier.id == enrolment_id, UserVerifier.user_id == user.id,
            UserVerifier.account_id == user.account_id, UserVerifier.status == "pending"))
        if v is not None and (v.enrollment_expires_at or 0) > now_ms():
            return enrollment_view(server_key, v, user.username, issuer_name)
    v, enrollment = await start_totp(session, user, name="Authenticator app", issuer_name=issuer_name,
                                     server_key=server_key, auth=flow.user_principal(user))
    pending.data = {**pending.data, "totp_enrollment_id": v.id}
    return enrollment


def _enrol_page(request: Request, issuer_id: str, ctx: dict[str, Any], policy: Policy,
                enrollment: dict[str, Any] | None, *, error: str | None = None, status_code: int = 200
                ) -> Response:
    cookie, token, fresh = csrf_pair(request, issuer_id)
    t = ctx["t"]
    response = render("enrol.html", status_code, title=t("enrol_title"), action=f"/{issuer_id}/login/enrol",
                      csrf=token, error=error, enrollment=enrollment,
                      qr=qr_data_uri(enrollment["provisioning_uri"]) if enrollment else None,
                      show_passkey="passkey" not in policy.disabled, issuer_id=issuer_id, **ctx)
    if fresh:
        set_cookie(response, request, csrf_cookie_name(issuer_id), cookie, issuer_id)
    return response


@router.get("/{issuer_id}/login/enrol", include_in_schema=False)
async def enrol_page(issuer_id: str, request: Request) -> Response:
    """Set up a second factor that a policy demands: an authenticator app (QR code) or a passkey."""
    async with request.app.state.db.unit_of_work() as session:
        keys, pending, user, params = await _start(request, issuer_id, ("enrol",), session)
        if keys is None:
            return _not_found()
        ctx = await page_context(session, request, keys, params)
        if pending is None or user is None or params is None:
            return _expired_page(ctx)
        policy = await load_policy(session, keys.account_id, issuer_id, user.id)
        t = ctx["t"]
        if "totp" in policy.disabled and "passkey" in policy.disabled:
            return message_page(t("sign_in_error"), t("no_methods"), status_code=403, **ctx)
        enrollment = None
        if "totp" not in policy.disabled and not _needs_passkey(params):
            enrollment = await _enrolment(session, request, pending, user, ctx["issuer_name"])
    return _enrol_page(request, issuer_id, ctx, policy, enrollment)


@router.post("/{issuer_id}/login/enrol", include_in_schema=False)
async def enrol_submit(issuer_id: str, request: Request) -> Response:
    """Confirm the authenticator app with its first code; show the backup codes once."""
    form = await request.form()
    server_key = request.app.state.secret_key
    ip = client_ip(request)
    async with request.app.state.db.unit_of_work() as session:
        keys, pending, user, params = await _start(request, issuer_id, ("enrol",), session)
        if keys is None:
            return _not_found()
        ctx = await page_context(session, request, keys, params)
        t = ctx["t"]
        if pending is None or user is None or params is None:
            return _expired_page(ctx)
        if not csrf_ok(request, issuer_id, str(form.get("csrf") or "")) or not _same_origin(request):
            return message_page(t("sign_in_error"), t("form_expired"), status_code=403, **ctx)
        policy = await load_policy(session, keys.account_id, issuer_id, user.id)
        if "totp" in policy.disabled or _needs_passkey(params):
            await record(session, type="user.verification.failed", account_id=keys.account_id,
                         issuer_id=issuer_id, user_id=user.id, subject={"type": "user", "id": user.id},
                         data={"method": "totp", "reason": "method_disabled", "step": "enrolment", "ip": ip},
                         auth=flow.event_auth(None, issuer_id, ip))
            refused = message_page(t("sign_in_error"), t("totp_disabled"), status_code=403, **ctx)
        else:
            refused = None
        enrolment_id = pending.data.get("totp_enrollment_id")
        result: dict[str, Any] = {"success": False}
        if refused is None and enrolment_id:
            wait = await flow.user_wait_seconds(session, keys.account_id, user.id)
            if not wait:
                result = await complete_totp(session, user, enrollment_id=str(enrolment_id),
                                             code=str(form.get("code") or "").strip()[:16],
                                             server_key=server_key, auth=flow.user_principal(user))
        if refused is None and not result.get("success"):
            pending.attempts += 1
            await flow.user_failed(session, keys.account_id, issuer_id, user.id)
            if pending.attempts >= flow.MAX_ATTEMPTS:
                await flow.drop_pending(session, pending)
                refused = message_page(t("sign_in_error"), t("start_again"), status_code=401, **ctx)
                clear_cookie(refused, request, flow.pending_cookie_name(issuer_id), issuer_id)
            else:
                enrollment = await _enrolment(session, request, pending, user, ctx["issuer_name"])
        elif refused is None:
            await flow.user_succeeded(session, keys.account_id, user.id)
            await flow.drop_pending(session, pending)
            _, cookie = await flow.start_session(session, request, account_id=keys.account_id,
                                                 issuer_id=issuer_id, user_id=user.id,
                                                 methods=[*pending.methods, "otp"], ip=ip)
    if refused is not None:
        return refused
    if not result.get("success"):
        return _enrol_page(request, issuer_id, ctx, policy, enrollment, error=t("bad_code"), status_code=401)
    response = render("backup_codes.html", 200, title=t("backup_title"), codes=result["backup_codes"],
                      next_url=authorize_target(issuer_id, params), **ctx)
    set_cookie(response, request, session_cookie_name(issuer_id), cookie, issuer_id,
               max_age=SESSION_TTL_MS // 1000)
    clear_cookie(response, request, flow.pending_cookie_name(issuer_id), issuer_id)
    return response
