"""The hosted sign-in page: GET renders it, POST checks CSRF and the password, throttles failures,
then hands over to the hosted flow (app/hosted): the second factor or enrolment when the user or a
policy needs one, else the issuer's login session (its cookie path-scoped to the issuer) and
/authorize again.

The password check and its throttle live in app/hosted/password.py (the invitation page uses the
same one)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from app.events.service import record
from app.hosted.pages import REDIRECT_HEADERS, after_password, page_context
from app.hosted.password import check_password, password_wait
from app.hosted.policy import disabled_methods, has_sso, upstream_buttons
from app.identity.service import sso_organization
from app.oidc import openapi as docs
from app.oidc.pages import (
    csrf_cookie_name,
    csrf_ok,
    csrf_pair,
    message_page,
    open_return,
    render,
    same_origin,
    set_cookie,
)
from app.oidc.runtime import get_runtime, key_set
from app.runtime.argon2 import Saturated
from app.signing_key.cache import KeySet
from app.user.passkeys import rp_id_for

router = APIRouter()


def _form_page(request: Request, issuer_id: str, return_to: str, ctx: dict[str, Any], *,
               error: str | None = None, username: str = "", status_code: int = 200,
               disabled: set[str] | frozenset[str] = frozenset()) -> Response:
    cookie, token, fresh = csrf_pair(request, issuer_id)
    return_query = urlencode({"return": return_to})
    upstreams = [(f"/{issuer_id}/login/federated/{id}?{return_query}", ctx["t"]("continue_with", name=label))
                 for id, label in ctx.get("upstream_methods", [])]
    response = render("login.html", status_code, title=ctx["t"]("sign_in"), action=f"/{issuer_id}/login",
                      upstreams=upstreams, sso_action=f"/{issuer_id}/login/sso",
                      csrf=token, return_to=return_to, error=error, username=username,
                      show_password="password" not in disabled,
                      show_passkey="passkey" not in disabled and rp_id_for(
                          request.app.state.settings.resolved_public_url()) is not None,
                      passkey_action=f"/{issuer_id}/login/passkey", issuer_id=issuer_id,
                      passkey_options_url=f"/{issuer_id}/login/passkey/options", **ctx)
    if fresh:
        set_cookie(response, request, csrf_cookie_name(issuer_id), cookie, issuer_id)
    return response


async def _context(request: Request, keys: KeySet, params: list[tuple[str, str]] | None
                   ) -> tuple[dict[str, Any], set[str]]:
    async with request.app.state.db.sessionmaker() as session:
        ctx = await page_context(session, request, keys, params)
        ctx["upstream_methods"] = await upstream_buttons(session, keys.account_id, keys.issuer_id)
        ctx["show_sso"] = await has_sso(session, keys.account_id, keys.issuer_id)
        # `org=` naming an organization with SSO: its connection is where the user signs in.
        org_id = next((v for k, v in params or [] if k == "org"), None)
        ctx["sso_org"] = (await sso_organization(session, account_id=keys.account_id,
                                                 issuer_id=keys.issuer_id, org_id=org_id)) if org_id else None
        return ctx, await disabled_methods(session, keys.account_id, keys.issuer_id)


@router.get("/{issuer_id}/login", **docs.LOGIN_PAGE)
async def login_page(issuer_id: str, request: Request) -> Response:
    """The sign-in form."""
    keys = await key_set(request, issuer_id)
    if keys is None:
        return message_page("Not found", "This sign-in address does not exist.", status_code=404)
    return_to = request.query_params.get("return", "")
    params = open_return(request.app.state.secret_key, issuer_id, return_to)
    ctx, disabled = await _context(request, keys, params)
    if params is None:
        return message_page(ctx["t"]("sign_in_error"), ctx["t"]("link_invalid"), **ctx)
    if ctx["sso_org"] is not None:
        return RedirectResponse(f"/{issuer_id}/login/federated/{ctx['sso_org'].id}?"
                                + urlencode({"return": return_to}), status_code=303,
                                headers=dict(REDIRECT_HEADERS))
    return _form_page(request, issuer_id, return_to, ctx, username=request.query_params.get("hint", "")[:320],
                      disabled=disabled)


@router.post("/{issuer_id}/login", **docs.LOGIN_SUBMIT)
async def login_submit(issuer_id: str, request: Request) -> Response:
    """Check the credentials; on success resume the authorization request."""
    keys = await key_set(request, issuer_id)
    if keys is None:
        return message_page("Not found", "This sign-in address does not exist.", status_code=404)
    form = await request.form()
    return_to = str(form.get("return") or "")
    params = open_return(request.app.state.secret_key, issuer_id, return_to)
    ctx, disabled = await _context(request, keys, params)
    t = ctx["t"]
    if params is None:
        return message_page(t("sign_in_error"), t("link_invalid"), **ctx)
    public = request.app.state.settings.resolved_public_url()
    if not csrf_ok(request, issuer_id, str(form.get("csrf") or "")) or not same_origin(request, public):
        return message_page(t("sign_in_error"), t("form_expired"), status_code=403, **ctx)
    username = str(form.get("username") or "")[:320]
    password = str(form.get("password") or "")[:1024]
    ip = get_runtime(request).address.of_scope(request.scope)

    def too_many(retry_after: int) -> Response:
        response = _form_page(request, issuer_id, return_to, ctx, username=username, status_code=429,
                              error=t("too_many"), disabled=disabled)
        response.headers["Retry-After"] = str(retry_after)
        return response

    wait = await password_wait(request, issuer_id, username, ip)
    if wait is not None:
        return too_many(wait)
    async with request.app.state.db.unit_of_work() as session:
        if "password" in disabled:
            # Not offered, and refused when posted anyway; nothing is checked or changed.
            await record(session, type="user.verification.failed", account_id=keys.account_id,
                         issuer_id=issuer_id, subject={"type": "issuer", "id": issuer_id},
                         data={"method": "password", "reason": "method_disabled", "ip": ip},
                         auth={"type": "anonymous", "ip": ip})
            return message_page(t("sign_in_error"), t("password_disabled"), status_code=403, **ctx)
        try:
            user = await check_password(session, request, account_id=keys.account_id, issuer_id=issuer_id,
                                        username=username, password=password, ip=ip)
        except Saturated as busy:
            return too_many(busy.retry_after)
        failed = user is None
        if user is not None:
            next_step = await after_password(session, request, keys, user, return_to, params, ip)
    if failed:
        return _form_page(request, issuer_id, return_to, ctx, username=username, status_code=401,
                          error=t("bad_credentials"), disabled=disabled)
    return next_step
