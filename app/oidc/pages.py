"""Server-rendered hosted pages: templates, security headers, per-issuer cookies, CSRF."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from app.core.crypto import constant_time_equals, generate_secret, hmac_sha256
from app.hosted.i18n import DEFAULT as DEFAULT_LOCALE
from app.hosted.i18n import translator

# The templates live with the hosted pages (app/hosted/templates); English unless a page passes `t`.
_env = Environment(loader=FileSystemLoader(Path(__file__).parent.parent / "hosted" / "templates"),
                   autoescape=select_autoescape(["html"]), enable_async=False)
_env.globals.update(t=translator(DEFAULT_LOCALE), locale=DEFAULT_LOCALE, brand=None)

SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    # Scripts only from this origin (the passkey ceremony); branded logos only over https.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data: https:; "
                               "script-src 'self'; connect-src 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    # Not no-referrer: with it browsers send `Origin: null` on the login POST, and the Origin check
    # could not tell our own form from a forged one. same-origin sends nothing to other sites.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
}
RETURN_TTL_SECONDS = 15 * 60


def render(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = _env.get_template(name).render(**context)
    return HTMLResponse(html, status_code=status_code, headers=dict(SECURITY_HEADERS))


def message_page(title: str, message: str, *, issuer_name: str = "authpi", status_code: int = 400,
                 is_error: bool = True, **context: Any) -> HTMLResponse:
    return render("message.html", status_code, title=title, message=message, issuer_name=issuer_name,
                  is_error=is_error, **context)


def session_cookie_name(issuer_id: str) -> str:
    return f"authpi_session_{issuer_id}"


def csrf_cookie_name(issuer_id: str) -> str:
    return f"authpi_csrf_{issuer_id}"


def set_cookie(response: Any, request: Request, name: str, value: str, issuer_id: str,
               max_age: int | None = None) -> None:
    """Issuers share one origin: cookies are path-scoped to the issuer, so they never cross over."""
    secure = request.app.state.settings.resolved_public_url().startswith("https://")
    response.set_cookie(name, value, max_age=max_age, path=f"/{issuer_id}", httponly=True,
                        samesite="lax", secure=secure)


def clear_cookie(response: Any, request: Request, name: str, issuer_id: str) -> None:
    secure = request.app.state.settings.resolved_public_url().startswith("https://")
    response.delete_cookie(name, path=f"/{issuer_id}", httponly=True, samesite="lax", secure=secure)


def csrf_pair(request: Request, issuer_id: str) -> tuple[str, str, bool]:
    """(cookie value, form token, cookie is new): the form token is an HMAC of the cookie value."""
    cookie = request.cookies.get(csrf_cookie_name(issuer_id))
    fresh = not cookie or len(cookie) > 100
    if fresh:
        cookie = generate_secret(24)
    token = hmac_sha256(request.app.state.secret_key, f"csrf:{issuer_id}:{cookie}")
    return str(cookie), token, fresh


def csrf_ok(request: Request, issuer_id: str, token: str | None) -> bool:
    cookie = request.cookies.get(csrf_cookie_name(issuer_id))
    if not cookie or not token or len(cookie) > 100:
        return False
    expected = hmac_sha256(request.app.state.secret_key, f"csrf:{issuer_id}:{cookie}")
    return constant_time_equals(expected, token)


def sign_return(server_key: str, issuer_id: str, params: list[tuple[str, str]]) -> str:
    """The authorization request, carried through the login page, signed so it cannot be altered."""
    payload = base64.urlsafe_b64encode(json.dumps(
        {"i": issuer_id, "p": params, "e": int(time.time()) + RETURN_TTL_SECONDS},
        separators=(",", ":")).encode()).decode().rstrip("=")
    return payload + "." + hmac_sha256(server_key, f"return:{payload}")


def open_return(server_key: str, issuer_id: str, value: str | None) -> list[tuple[str, str]] | None:
    if not value or len(value) > 16384 or "." not in value:
        return None
    payload, _, mac = value.rpartition(".")
    if not constant_time_equals(hmac_sha256(server_key, f"return:{payload}"), mac):
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except ValueError:
        return None
    if data.get("i") != issuer_id or int(data.get("e", 0)) < time.time():
        return None
    return [(str(k), str(v)) for k, v in data.get("p", [])]


def same_origin(request: Request, public: str) -> bool:
    """The form was posted from our own pages: `Origin` says so or, where a client sends none,
    `Referer` does. A request with neither is refused (a CSRF token alone is one defence, not two).
    The pages' `Referrer-Policy: same-origin` makes browsers send the real Origin here."""
    origin = request.headers.get("origin")
    if origin is not None and origin != "null":
        return origin.rstrip("/") == public
    referer = request.headers.get("referer")
    return referer is not None and (referer == public or referer.startswith(public + "/"))
