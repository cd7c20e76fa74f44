"""The console's plumbing: templates, security headers, the encrypted session cookie, CSRF, and the
signed-in operator (re-verified through the API key verifier on every request)."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from cryptography.exceptions import InvalidTag
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.auth import Principal
from app.core.crypto import constant_time_equals, decrypt, encrypt
from app.core.errors import ApiError, validation_fields
from app.core.scopes import has_access
from app.issuer.dependencies import get_issuer_in_account

HERE = Path(__file__).parent
SESSION_COOKIE = "authpi_console"
PRE_CSRF_COOKIE = "authpi_console_csrf"
COOKIE_PATH = "/console"
# A session ends after this long without a request, and in any case after MAX_AGE.
IDLE_SECONDS = 30 * 60
MAX_AGE_SECONDS = 12 * 3600
_AAD = b"authpi-console-session/1"

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))


def fmt_time(ms: int | None) -> str:
    if not ms:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ms / 1000))


env.filters["time"] = fmt_time
env.filters["json"] = lambda v: json.dumps(v, indent=2, sort_keys=True, ensure_ascii=False)

# Navigation: (label, path, resource whose read scope shows it).
NAV = (
    ("Overview", "/console", "events"),
    ("Issuers", "/console/issuers", "issuers"),
    ("Organizations", "/console/organizations", "issuers.organizations"),
    ("Users", "/console/users", "issuers.users"),
    ("Agents", "/console/agents", "issuers.agents"),
    ("Webhooks", "/console/webhooks", "webhooks"),
    ("Events", "/console/events", "events"),
    ("API keys", "/console/api-keys", "api_keys"),
)


def current_section(path: str) -> str:
    """The navigation item a page belongs to (an organization's page is under Organizations)."""
    for part, label in (("/organizations", "Organizations"), ("/users", "Users"), ("/agents", "Agents")):
        if part in path:
            return label
    for label, href, _ in reversed(NAV):
        if path == href or (href != "/console" and path.startswith(href)):
            return label
    return "Overview" if path == "/console" else ""


@dataclass
class ConsoleSession:
    key_id: str
    secret: str
    csrf: str
    issued_at: int
    last_seen: int

    def seal(self, server_key: str) -> str:
        raw = json.dumps(
            {"k": self.key_id, "s": self.secret, "c": self.csrf, "i": self.issued_at, "t": self.last_seen}
        ).encode()
        return encrypt(server_key, raw, _AAD)

    @classmethod
    def open(cls, server_key: str, token: str) -> ConsoleSession | None:
        try:
            d = json.loads(decrypt(server_key, token, _AAD))
            return cls(
                key_id=str(d["k"]),
                secret=str(d["s"]),
                csrf=str(d["c"]),
                issued_at=int(d["i"]),
                last_seen=int(d["t"]),
            )
        except (InvalidTag, ValueError, KeyError, TypeError):
            return None

    def expired(self, now: int) -> bool:
        return now - self.last_seen > IDLE_SECONDS or now - self.issued_at > MAX_AGE_SECONDS


def new_session(key_id: str, secret: str) -> ConsoleSession:
    now = int(time.time())
    return ConsoleSession(key_id, secret, secrets.token_urlsafe(32), now, now)


def _secure(request: Request) -> bool:
    return request.app.state.settings.resolved_public_url().startswith("https://")


def set_session_cookie(response: Response, request: Request, sess: ConsoleSession) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        sess.seal(request.app.state.secret_key),
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        max_age=MAX_AGE_SECONDS,
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict", secure=_secure(request)
    )


def set_pre_csrf(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        PRE_CSRF_COOKIE,
        token,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        max_age=3600,
    )


@dataclass
class Operator:
    """The signed-in operator: the session and the Principal its key verified to."""

    principal: Principal
    session: ConsoleSession
    notices: list[str] = field(default_factory=list)

    @property
    def account_id(self) -> str:
        return self.principal.account_id

    @property
    def csrf(self) -> str:
        return self.session.csrf

    @property
    def issuer_ids(self) -> tuple[str, ...] | None:
        """The issuers of a delegated admin (an issuer-limited key); None: the whole account."""
        return self.principal.issuer_ids

    def can(self, resource: str, action: str = "read") -> bool:
        """The key's scopes allow it; a delegated admin has no account-wide resources at all."""
        if self.issuer_ids is not None and not _within_issuers(resource):
            return False
        return has_access(self.principal.scopes, resource, action)

    @property
    def can_create_issuers(self) -> bool:
        return self.issuer_ids is None and self.can("issuers", "write")


def _within_issuers(resource: str) -> bool:
    return resource == "issuers" or resource.startswith("issuers.")


# What a delegated admin may open outside `/console/issuers/{issuer_id}/…`: the lists, which show
# its issuers only (see `chosen_issuer` and the issuers page). Every other account-level page is
# refused, as the API refuses account-level routes (app.core.auth.check_issuer_limit).
DELEGATED_LIST_PAGES = frozenset(
    {"/console", "/console/issuers", "/console/organizations", "/console/users", "/console/agents",
     "/console/sign-out"}
)


def check_issuer_limit(request: Request, operator: Operator) -> None:
    """The console's side of issuer-limited keys: another issuer's URL is a not-found page (as
    another account's object is), an account-level page a refusal; nothing is changed."""
    allowed = operator.issuer_ids
    if allowed is None:
        return
    issuer_id = request.path_params.get("issuer_id")
    if issuer_id is not None:
        if issuer_id not in allowed:
            raise ConsoleRefusal(404, "Not found", "Issuer not found. It does not exist in this account.",
                                 operator=operator)
        return
    if request.url.path.rstrip("/") not in DELEGATED_LIST_PAGES:
        raise ConsoleRefusal(
            403,
            "Not allowed",
            "The API key of this session administers some issuers only: account-wide pages are not "
            "available to it. Nothing was changed.",
            operator=operator,
        )


class ConsoleRefusal(Exception):
    """Rendered as a page (never JSON): why the request was refused; nothing was changed."""

    def __init__(
        self,
        status: int,
        title: str,
        message: str,
        *,
        sign_in: bool = False,
        end_session: bool = False,
        operator: Operator | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.title, self.message = status, title, message
        self.sign_in, self.end_session, self.operator = sign_in, end_session, operator


def render(
    request: Request, name: str, *, operator: Operator | None = None, status_code: int = 200, **context: Any
) -> HTMLResponse:
    nav = [(label, path) for label, path, res in NAV if operator is None or operator.can(res)]
    current = current_section(request.url.path)
    html = env.get_template(name).render(
        request=request, operator=operator, nav=nav, path=request.url.path, current=current, **context
    )
    response = HTMLResponse(html, status_code=status_code, headers=dict(SECURITY_HEADERS))
    if operator is not None:
        operator.session.last_seen = int(time.time())
        set_session_cookie(response, request, operator.session)
    return response


def with_values(fields: list[dict[str, Any]], values: dict[str, str]) -> list[dict[str, Any]]:
    """The form's fields again with what the operator typed in them."""
    return [{**f, "value": values.get(f["name"], f.get("value", ""))} for f in fields]


def form_page(
    request: Request,
    operator: Operator,
    form: dict[str, Any],
    errors: FormErrors | None = None,
    values: dict[str, str] | None = None,
) -> HTMLResponse:
    """A "New ..." form (`form`: its title, action, fields and cancel link): blank, or shown again
    (422) with what was typed and why it was refused."""
    if errors is None:
        return render(request, "form.html", operator=operator, **form)
    fields = with_values(form["fields"], values or {})
    return render(request, "form.html", operator=operator, status_code=422, errors=errors,
                  **{**form, "fields": fields})


async def new_in_issuer_page(request: Request, operator: Operator, issuer_id: str, resource: str,
                             form: dict[str, Any]) -> HTMLResponse:
    """A blank "New ..." form under an issuer the operator's account owns, for one allowed to write
    `resource` there."""
    require(operator, resource, "write")
    await read(request, lambda s: get_issuer_in_account(s, operator.account_id, issuer_id))
    return form_page(request, operator, form)


def refusal_page(request: Request, exc: ConsoleRefusal) -> HTMLResponse:
    response = render(
        request,
        "message.html",
        operator=None if exc.end_session else exc.operator,
        status_code=exc.status,
        title=exc.title,
        message=exc.message,
        sign_in=exc.sign_in,
    )
    if exc.end_session:
        clear_session_cookie(response, request)
    return response


def redirect(request: Request, url: str, operator: Operator | None = None) -> RedirectResponse:
    response = RedirectResponse(url, status_code=303, headers=dict(SECURITY_HEADERS))
    if operator is not None:
        operator.session.last_seen = int(time.time())
        set_session_cookie(response, request, operator.session)
    return response


async def current_operator(request: Request) -> Operator:
    """The session's operator, its key re-verified now (the verification cache makes that cheap).

    No session, an expired one, or a key that is no longer valid (blocked, revoked, expired, its
    account gone) ends the session with a page that says so.
    """
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise ConsoleRefusal(401, "Sign in required", "Sign in to use the console.", sign_in=True)
    sess = ConsoleSession.open(request.app.state.secret_key, token)
    if sess is None or sess.expired(int(time.time())):
        raise ConsoleRefusal(
            401,
            "Session expired",
            "Your console session has expired. Sign in again.",
            sign_in=True,
            end_session=True,
        )
    try:
        principal = await request.app.state.verifiers.basic(request, sess.key_id, sess.secret)
    except ApiError as e:
        if e.status_code == 429:
            raise ConsoleRefusal(429, "Too many attempts", "Too many attempts: try again in a minute.") from e
        raise ConsoleRefusal(
            401,
            "Session ended",
            "The API key of this session is no longer valid (blocked, revoked or expired). Sign in again.",
            sign_in=True,
            end_session=True,
        ) from e
    if not principal.account_level:
        raise ConsoleRefusal(
            403,
            "Account key required",
            "The console needs an account API key.",
            sign_in=True,
            end_session=True,
        )
    operator = Operator(principal=principal, session=sess)
    check_issuer_limit(request, operator)
    return operator


async def check_csrf(request: Request, operator: Operator) -> dict[str, str]:
    """The posted form, once its CSRF token matched the session's (else a refusal page)."""
    form = await request.form()
    sent = form.get("csrf")
    if not isinstance(sent, str) or not constant_time_equals(sent, operator.csrf):
        raise ConsoleRefusal(
            403,
            "Form expired",
            "This form was not sent from the console page it belongs to (missing or wrong "
            "CSRF token). Nothing was changed: reload the page and try again.",
            operator=operator,
        )
    return {k: v for k, v in form.items() if isinstance(v, str)}


def require(operator: Operator, resource: str, action: str) -> None:
    if not operator.can(resource, action):
        raise ConsoleRefusal(
            403,
            "Not allowed",
            f"The API key of this session lacks the scope {resource}:{action}. Nothing was changed.",
            operator=operator,
        )


@dataclass
class FormErrors:
    message: str | None = None
    fields: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.message or self.fields)

    def at(self, name: str) -> str | None:
        """The error of an input: its own field, or an item of it (`redirect_uris.0`)."""
        found = [v for k, v in self.fields.items() if k == name or k.startswith(name + ".")]
        return "; ".join(found) or None

    def general(self, known: Iterable[str]) -> list[str]:
        """Field errors with no input of their own on the form, shown at the top."""
        names = list(known)
        return [
            f"{k}: {v}"
            for k, v in self.fields.items()
            if not any(k == n or k.startswith(n + ".") for n in names)
        ]


M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


def parse_body(model: type[M], body: dict[str, Any]) -> M | FormErrors:
    """The API's own body model validates the form: the same rules and messages."""
    try:
        return model.model_validate(body)
    except PydanticValidationError as e:
        fields = {f["field"]: f["message"] for f in validation_fields(e.errors())}
        return FormErrors("Some fields need attention.", fields)


async def run(request: Request, action: Callable[[AsyncSession], Awaitable[T]]) -> T | FormErrors:
    """One unit of work, as the API's: commit on success, roll back on a domain error, whose message
    and field errors come back for the form."""
    try:
        async with request.app.state.db.unit_of_work() as session:
            result = await action(session)
        for hook in session.info.pop("after_commit", []):
            await hook()
        return result
    except ApiError as e:
        if e.status_code == 404:
            raise ConsoleRefusal(
                404, "Not found", f"{e.description}. It does not exist in this account."
            ) from e
        fields = {f["field"]: f["message"] for f in (e.fields or [])}
        return FormErrors(e.description, fields)


async def read(request: Request, action: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """A read in its own unit of work; a domain 404 becomes the console's not-found page."""
    try:
        async with request.app.state.db.unit_of_work() as session:
            return await action(session)
    except ApiError as e:
        if e.status_code == 404:
            raise ConsoleRefusal(
                404, "Not found", f"{e.description}. It does not exist in this account."
            ) from e
        raise ConsoleRefusal(e.status_code, "Refused", e.description) from e


def lines(value: str | None) -> list[str]:
    """A textarea or comma list: one item per line or comma, blanks dropped."""
    return [p.strip() for p in (value or "").replace(",", "\n").splitlines() if p.strip()]
