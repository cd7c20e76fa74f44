"""Sign-in with an account API key, sign-out, and the single-use login link."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from app.console import login_link
from app.console.web import (
    PRE_CSRF_COOKIE,
    ConsoleRefusal,
    FormErrors,
    Operator,
    check_csrf,
    clear_session_cookie,
    current_operator,
    new_session,
    redirect,
    render,
    set_pre_csrf,
    set_session_cookie,
)
from app.core.crypto import constant_time_equals
from app.core.errors import ApiError

router = APIRouter(include_in_schema=False)


def _sign_in_page(
    request: Request, *, errors: FormErrors | None = None, key_id: str = "", status_code: int = 200
) -> HTMLResponse:
    token = secrets.token_urlsafe(32)
    response = render(
        request,
        "sign_in.html",
        title="Sign in",
        csrf=token,
        errors=errors,
        key_id=key_id,
        status_code=status_code,
    )
    set_pre_csrf(response, request, token)
    return response


async def _check_pre_csrf(request: Request) -> dict[str, str]:
    """Before a session exists, CSRF is a double submit: the form's token equals its cookie's."""
    form = await request.form()
    sent, cookie = form.get("csrf"), request.cookies.get(PRE_CSRF_COOKIE)
    if not isinstance(sent, str) or not cookie or not constant_time_equals(sent, cookie):
        raise ConsoleRefusal(
            403,
            "Form expired",
            "This form was not sent from the console's sign-in page "
            "(missing or wrong CSRF token). Nothing was changed: reload and try again.",
            sign_in=True,
        )
    return {k: v for k, v in form.items() if isinstance(v, str)}


@router.get("/console/sign-in")
async def sign_in_page(request: Request) -> Response:
    return _sign_in_page(request)


@router.post("/console/sign-in")
async def sign_in(request: Request) -> Response:
    form = await _check_pre_csrf(request)
    key_id, secret = form.get("key_id", "").strip(), form.get("secret", "")
    if not key_id or not secret:
        fields = {k: "Required" for k, v in (("key_id", key_id), ("secret", secret)) if not v}
        return _sign_in_page(
            request,
            errors=FormErrors("Enter the Key ID and the Secret.", fields),
            key_id=key_id,
            status_code=422,
        )
    try:
        principal = await request.app.state.verifiers.basic(request, key_id, secret)
    except ApiError as e:
        message = (
            "Too many attempts: wait a minute and try again."
            if e.status_code == 429
            else "This Key ID and Secret do not sign in: the key is unknown, blocked, revoked or "
            "expired, or the secret is wrong."
        )
        return _sign_in_page(request, errors=FormErrors(message), key_id=key_id, status_code=e.status_code)
    if not principal.account_level:
        return _sign_in_page(
            request,
            errors=FormErrors("This is an organization key: the console needs an account API key."),
            key_id=key_id,
            status_code=403,
        )
    response = redirect(request, "/console")
    set_session_cookie(response, request, new_session(key_id, secret))
    response.delete_cookie(PRE_CSRF_COOKIE, path="/console")
    return response


@router.post("/console/sign-out")
async def sign_out(request: Request, operator: Operator = Depends(current_operator)) -> Response:
    await check_csrf(request, operator)
    response = redirect(request, "/console/sign-in")
    clear_session_cookie(response, request)
    return response


_LINK_GONE = ConsoleRefusal(
    404,
    "Link not valid",
    "This sign-in link is unknown, already used or expired "
    "(links last 10 minutes). Ask for a new one: authpi account login-link ACCOUNT_ID.",
    sign_in=True,
)


@router.get("/console/login-link/{token}")
async def login_link_page(request: Request, token: str) -> Response:
    """Shows a button: following the link alone (a mail scanner's GET) uses nothing up."""
    async with request.app.state.db.unit_of_work() as session:
        link = await login_link.peek(session, request.app.state.secret_key, token[:128])
    if link is None:
        raise _LINK_GONE
    csrf = secrets.token_urlsafe(32)
    response = render(
        request,
        "login_link.html",
        title="Sign in with a link",
        csrf=csrf,
        account_id=link.account_id,
        action=f"/console/login-link/{token}",
    )
    set_pre_csrf(response, request, csrf)
    return response


@router.post("/console/login-link/{token}")
async def use_login_link(request: Request, token: str) -> Response:
    await _check_pre_csrf(request)
    try:
        async with request.app.state.db.unit_of_work() as session:
            key, secret = await login_link.consume(session, request.app.state.secret_key, token[:128])
        for hook in session.info.pop("after_commit", []):
            await hook()
    except ApiError as e:
        raise _LINK_GONE from e
    response = redirect(request, "/console")
    set_session_cookie(response, request, new_session(key.id, secret))
    response.delete_cookie(PRE_CSRF_COOKIE, path="/console")
    return response
