"""The hosted sign-in page: GET renders it, POST checks CSRF and the password, throttles failures,
creates the issuer's login session (its cookie is path-scoped to the issuer) and resumes /authorize.

Failures go through the runtime kit's shared throttle (kind `password`, the credential being the
issuer and the normalised username, known or not), with the client address as the runtime resolves
it (trusted proxies only): a forged X-Forwarded-For hop neither dodges the throttle nor reaches the
trail, and a flood on a username from other addresses never locks its holder out."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from app.core.ids import now_ms
from app.events.service import record
from app.oidc import openapi as docs
from app.oidc.errors import NO_STORE
from app.oidc.pages import (
    SECURITY_HEADERS,
    csrf_cookie_name,
    csrf_ok,
    csrf_pair,
    message_page,
    open_return,
    render,
    session_cookie_name,
    set_cookie,
)
from app.oidc.runtime import get_runtime, key_set
from app.runtime.argon2 import Saturated
from app.session.service import SESSION_TTL_MS, create_login_session
from app.user.service import authenticate_password

router = APIRouter()
GENERIC_FAILURE = "The username or password is incorrect."
PASSWORD = "password"  # the throttle's credential kind


def same_origin(request: Request, public: str) -> bool:
    """The form was posted from our own pages: `Origin` says so or, where a client sends none,
    `Referer` does. A request with neither is refused (a CSRF token alone is one defence, not two).
    The pages' `Referrer-Policy: same-origin` makes browsers send the real Origin here."""
    origin = request.headers.get("origin")
    if origin is not None and origin != "null":
        return origin.rstrip("/") == public
    referer = request.headers.get("referer")
    return referer is not None and (referer == public or referer.startswith(public + "/"))



async def _issuer_name(request: Request, issuer_id: str) -> str | None:
    keys = await key_set(request, issuer_id)
    if keys is None:
        return None
    return keys.issuer_name or issuer_id


def _form_page(request: Request, issuer_id: str, return_to: str, *, error: str | None = None,
               username: str = "", status_code: int = 200, issuer_name: str | None = None) -> Response:
    cookie, token, fresh = csrf_pair(request, issuer_id)
    response = render("login.html", status_code, title="Sign in", issuer_name=issuer_name or issuer_id,
                      action=f"/{issuer_id}/login", csrf=token, return_to=return_to, error=error,
                      username=username)
    if fresh:
        set_cookie(response, request, csrf_cookie_name(issuer_id), cookie, issuer_id)
    return response


def _too_many(request: Request, issuer_id: str, return_to: str, username: str, issuer_name: str,
              retry_after: int) -> Response:
    response = _form_page(request, issuer_id, return_to, username=username, status_code=429,
                          error="Too many failed attempts. Try again later.", issuer_name=issuer_name)
    response.headers["Retry-After"] = str(retry_after)
    return response


@router.get("/{issuer_id}/login", **docs.LOGIN_PAGE)
async def login_page(issuer_id: str, request: Request) -> Response:
    """The sign-in form."""
    name = await _issuer_name(request, issuer_id)
    if name is None:
        return message_page("Not found", "This sign-in address does not exist.", status_code=404)
    return_to = request.query_params.get("return", "")
    if open_return(request.app.state.secret_key, issuer_id, return_to) is None:
        return message_page("Sign-in error", "This sign-in link is invalid or has expired. "
                            "Go back to the application and try again.", issuer_name=name)
    return _form_page(request, issuer_id, return_to, username=request.query_params.get("hint", "")[:320],
                      issuer_name=name)


@router.post("/{issuer_id}/login", **docs.LOGIN_SUBMIT)
async def login_submit(issuer_id: str, request: Request) -> Response:
    """Check the credentials; on success resume the authorization request."""
    keys = await key_set(request, issuer_id)
    if keys is None:
        return message_page("Not found", "This sign-in address does not exist.", status_code=404)
    form = await request.form()
    return_to = str(form.get("return") or "")
    params = open_return(request.app.state.secret_key, issuer_id, return_to)
    if params is None:
        return message_page("Sign-in error", "This sign-in link is invalid or has expired.",
                            issuer_name=keys.issuer_name)
    public = request.app.state.settings.resolved_public_url()
    if not csrf_ok(request, issuer_id, str(form.get("csrf") or "")) or not same_origin(request, public):
        return message_page("Sign-in error", "The form expired. Please try again.",
                            issuer_name=keys.issuer_name, status_code=403)
    username = str(form.get("username") or "")[:320]
    password = str(form.get("password") or "")[:1024]
    rt = get_runtime(request)
    ip = rt.address.of_scope(request.scope)
    credential = f"{issuer_id}:{username.strip().lower()}"
    wait = await rt.throttle.admit(PASSWORD, credential, ip)
    if wait is not None:
        return _too_many(request, issuer_id, return_to, username, keys.issuer_name, wait)
    async with request.app.state.db.unit_of_work() as session:
        user = None
        if username and password:
            try:
                user = await authenticate_password(session, account_id=keys.account_id,
                                                   issuer_id=issuer_id, username=username,
                                                   password=password, check=rt.argon2.verify)
            except Saturated as busy:
                return _too_many(request, issuer_id, return_to, username, keys.issuer_name,
                                 busy.retry_after)
        if user is None:
            await rt.throttle.failed(PASSWORD, credential, ip)
            await record(session, type="user.verification.failed", account_id=keys.account_id,
                         issuer_id=issuer_id, subject={"type": "issuer", "id": issuer_id},
                         data={"method": "password", "reason": "invalid_credentials", "ip": ip},
                         auth={"type": "anonymous", "ip": ip})
            failed = True
        else:
            failed = False
            await rt.throttle.succeeded(PASSWORD, credential, ip)
            await record(session, type="user.verification.succeeded", account_id=keys.account_id,
                         issuer_id=issuer_id, user_id=user.id, subject={"type": "user", "id": user.id},
                         data={"method": "password", "ip": ip},
                         auth={"type": "user", "user_id": user.id, "issuer_id": issuer_id})
            login, cookie = await create_login_session(
                session, server_key=request.app.state.secret_key, account_id=keys.account_id,
                issuer_id=issuer_id, user_id=user.id, origin=ip,
                user_agent=request.headers.get("user-agent"))
            login.last_activity_at = now_ms()
    if failed:
        return _form_page(request, issuer_id, return_to, username=username, status_code=401,
                          error=GENERIC_FAILURE, issuer_name=keys.issuer_name)
    target = f"/{issuer_id}/authorize?" + urlencode(params)
    response = RedirectResponse(target, status_code=303, headers={**NO_STORE, **{
        k: v for k, v in SECURITY_HEADERS.items() if k not in ("Cache-Control", "Pragma")}})
    set_cookie(response, request, session_cookie_name(issuer_id), cookie, issuer_id,
               max_age=SESSION_TTL_MS // 1000)
    return response
