"""The hosted sign-in page: GET renders it, POST checks CSRF and the password, throttles failures,
creates the issuer's login session (its cookie is path-scoped to the issuer) and resumes /authorize."""

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
from app.session.service import SESSION_TTL_MS, create_login_session

router = APIRouter()
GENERIC_FAILURE = "The username or password is incorrect."


def _client_ip(request: Request) -> str:
    if request.app.state.settings.trust_proxy_headers:
        forwarded = request.headers.get("x-forwarded-for")
        if forwarded:
            return forwarded.split(",")[0].strip()[:64]
    return request.client.host if request.client else "unknown"


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
    origin = request.headers.get("origin")
    public = request.app.state.settings.resolved_public_url()
    if not csrf_ok(request, issuer_id, str(form.get("csrf") or "")) or (
            origin not in (None, "null") and origin.rstrip("/") != public):
        return message_page("Sign-in error", "The form expired. Please try again.",
                            issuer_name=keys.issuer_name, status_code=403)
    username = str(form.get("username") or "")[:320]
    password = str(form.get("password") or "")[:1024]
    rt = get_runtime(request)
    ip = _client_ip(request)
    user_key = f"login:{issuer_id}:{username.strip().lower()}"
    ip_key = f"login-ip:{issuer_id}:{ip}"
    wait = max(rt.throttle.retry_after(user_key), rt.login_ip_throttle.retry_after(ip_key))
    if wait:
        response = _form_page(request, issuer_id, return_to, username=username, status_code=429,
                              error="Too many failed attempts. Try again later.",
                              issuer_name=keys.issuer_name)
        response.headers["Retry-After"] = str(wait)
        return response
    from app.user.service import authenticate_password

    async with request.app.state.db.unit_of_work() as session:
        user = None
        if username and password:
            user = await authenticate_password(session, account_id=keys.account_id, issuer_id=issuer_id,
                                               username=username, password=password)
        if user is None:
            rt.throttle.fail(user_key)
            rt.login_ip_throttle.fail(ip_key)
            await record(session, type="user.verification.failed", account_id=keys.account_id,
                         issuer_id=issuer_id, subject={"type": "issuer", "id": issuer_id},
                         data={"method": "password", "reason": "invalid_credentials", "ip": ip},
                         auth={"type": "anonymous", "ip": ip})
            failed = True
        else:
            failed = False
            rt.throttle.reset(user_key)
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
