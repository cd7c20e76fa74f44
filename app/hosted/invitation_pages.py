"""The hosted invitation page: the link of an invitation's email, `/{issuer_id}/invitation/{token}`.

GET shows the organization (its name and branding) and the invited email, with Accept and Decline.
Accepting needs a password: the existing user's (the invited email is their username), checked by
the hosted login's own check and throttle (app/hosted/password.py), or a new one that creates the
user with the email as username. Receiving the mail proves the email, so it is marked verified.
The membership, the user, the acceptance and their events are written in one transaction.
Declining needs only the link.

Every refusal is its own page and changes nothing: an unknown link (also another issuer's, or an
older link of a resent invitation) 404; expired or revoked 410; already accepted or declined 409;
the organization suspended or not accepting invitations 403; its `max_members` reached 409. The
POSTs check the CSRF token and the Origin as the sign-in page does. No JavaScript is needed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Conflict
from app.hosted import flow
from app.hosted.pages import _same_origin, client_ip, page_context
from app.hosted.password import check_password, password_wait
from app.hosted.policy import disabled_methods
from app.invitation import service as invitations
from app.models.invitation import Invitation
from app.models.organization import Organization
from app.models.user import User
from app.oidc.pages import csrf_cookie_name, csrf_ok, csrf_pair, message_page, render, set_cookie
from app.oidc.runtime import key_set
from app.runtime.argon2 import Saturated
from app.signing_key.cache import KeySet
from app.user.schemas import PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH, Password, UserCreate
from app.user.service import create_user, mark_email_verified

router = APIRouter()
_PASSWORD = TypeAdapter(Password)

# refusal -> (status, message key)
REFUSALS: dict[str, tuple[int, str]] = {
    invitations.NOT_FOUND: (404, "invitation_not_found"),
    invitations.EXPIRED: (410, "invitation_expired"),
    invitations.REVOKED: (410, "invitation_revoked"),
    invitations.ACCEPTED: (409, "invitation_accepted"),
    invitations.DECLINED: (409, "invitation_declined"),
    invitations.SUSPENDED: (403, "invitation_suspended"),
    invitations.DISABLED: (403, "invitation_disabled"),
    invitations.FULL: (409, "invitation_full"),
}


def _not_found() -> Response:
    return message_page("Not found", "This address does not exist.", status_code=404)


async def _context(session: AsyncSession, request: Request, keys: KeySet, org: Organization | None
                   ) -> dict[str, Any]:
    """The catalog and the branding (the issuer's, with the organization's name and logo)."""
    ctx = await page_context(session, request, keys, [("org", org.id)] if org is not None else None)
    ctx["org_name"] = ctx["brand"].organization_name or (org.name if org is not None else None) or ""
    return ctx


def _refusal(ctx: dict[str, Any], reason: str) -> Response:
    status, key = REFUSALS[reason]
    t = ctx["t"]
    return message_page(t("invitation_error"), t(key, name=ctx["org_name"] or ctx["issuer_name"]),
                        status_code=status, **ctx)


def _form_expired(ctx: dict[str, Any]) -> Response:
    t = ctx["t"]
    return message_page(t("invitation_error"), t("form_expired"), status_code=403, **ctx)


def _page(request: Request, issuer_id: str, token: str, ctx: dict[str, Any], inv: Invitation, *,
          existing: bool, show_password: bool, error: str | None = None, status_code: int = 200
          ) -> Response:
    cookie, csrf, fresh = csrf_pair(request, issuer_id)
    base = f"/{issuer_id}/invitation/{token}"
    title = ctx["t"]("invitation_title", name=ctx["org_name"])
    response = render("invitation.html", status_code, title=title,
                      email=inv.email_invited, existing=existing, show_password=show_password,
                      accept_action=f"{base}/accept", decline_action=f"{base}/decline", csrf=csrf,
                      error=error, min_length=PASSWORD_MIN_LENGTH, max_length=PASSWORD_MAX_LENGTH, **ctx)
    if fresh:
        set_cookie(response, request, csrf_cookie_name(issuer_id), cookie, issuer_id)
    return response


def _again(request: Request, issuer_id: str, token: str, ctx: dict[str, Any], inv: Invitation, *,
           existing: bool, error: str, status_code: int, retry_after: int | None = None) -> Response:
    """The form again with an error (and Retry-After when throttled)."""
    response = _page(request, issuer_id, token, ctx, inv, existing=existing, show_password=True,
                     error=error, status_code=status_code)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def _new_password_error(t: Any, password: str) -> str | None:
    """The server's password rules (app/user/schemas.Password), in the page's language."""
    try:
        _PASSWORD.validate_python(password)
    except ValidationError:
        if len(password) < PASSWORD_MIN_LENGTH:
            return str(t("password_short", min=PASSWORD_MIN_LENGTH))
        return str(t("password_long", max=PASSWORD_MAX_LENGTH))
    return None


async def _posted(session: AsyncSession, request: Request, keys: KeySet, token: str, csrf: str
                  ) -> tuple[dict[str, Any], Invitation | None, Organization | None, Response | None]:
    """A POST's invitation and organization, locked, with the page context; or the refusal page
    (the link's, then CSRF and Origin as on the sign-in page)."""
    inv, org, reason = await invitations.find_by_link(
        session, request.app.state.secret_key, account_id=keys.account_id, issuer_id=keys.issuer_id,
        token=token, lock=True)
    ctx = await _context(session, request, keys, org)
    if reason is not None or inv is None or org is None:
        return ctx, None, None, _refusal(ctx, reason or invitations.NOT_FOUND)
    if not csrf_ok(request, keys.issuer_id, csrf) or not _same_origin(request):
        return ctx, None, None, _form_expired(ctx)
    return ctx, inv, org, None


@router.get("/{issuer_id}/invitation/{token}", include_in_schema=False)
async def invitation_page(issuer_id: str, token: str, request: Request) -> Response:
    """The invitation: who invites whom, Accept (with a password) and Decline."""
    keys = await key_set(request, issuer_id)
    if keys is None:
        return _not_found()
    async with request.app.state.db.sessionmaker() as session:
        inv, org, reason = await invitations.find_by_link(
            session, request.app.state.secret_key, account_id=keys.account_id, issuer_id=issuer_id,
            token=token)
        ctx = await _context(session, request, keys, org)
        if reason is not None or inv is None or org is None:
            return _refusal(ctx, reason or invitations.NOT_FOUND)
        existing = await invitations.invited_user(session, org, inv) is not None
        disabled = await disabled_methods(session, keys.account_id, issuer_id)
    return _page(request, issuer_id, token, ctx, inv, existing=existing,
                 show_password="password" not in disabled)


@router.post("/{issuer_id}/invitation/{token}/accept", include_in_schema=False)
async def accept_submit(issuer_id: str, token: str, request: Request) -> Response:
    """Accept: the existing user's password, or a new password that creates the user; then the
    membership with the invited scopes and groups, all in one transaction."""
    keys = await key_set(request, issuer_id)
    if keys is None:
        return _not_found()
    form = await request.form()
    password = str(form.get("password") or "")[:1024]
    ip = client_ip(request)
    ctx: dict[str, Any] = {}
    try:
        async with request.app.state.db.unit_of_work() as session:
            ctx, inv, org, refused = await _posted(session, request, keys, token, str(form.get("csrf") or ""))
            if refused is not None or inv is None or org is None:
                return refused or _not_found()
            t = ctx["t"]
            if "password" in await disabled_methods(session, keys.account_id, issuer_id):
                return message_page(t("invitation_error"), t("invitation_no_password", name=ctx["org_name"]),
                                    status_code=403, **ctx)
            user = await invitations.invited_user(session, org, inv)
            if user is not None:
                wait = await password_wait(request, issuer_id, user.username, ip)
                checked: User | None = None
                try:
                    checked = None if wait is not None else await check_password(
                        session, request, account_id=keys.account_id, issuer_id=issuer_id,
                        username=user.username, password=password, ip=ip)
                except Saturated as busy:
                    wait = busy.retry_after
                if wait is not None:
                    return _again(request, issuer_id, token, ctx, inv, existing=True, error=t("too_many"),
                                  status_code=429, retry_after=wait)
                if checked is None:
                    return _again(request, issuer_id, token, ctx, inv, existing=True,
                                  error=t("bad_password"), status_code=401)
                user = checked
            else:
                error = _new_password_error(t, password)
                if error is not None:
                    return _again(request, issuer_id, token, ctx, inv, existing=False, error=error,
                                  status_code=400)
                user = await create_user(
                    session, account_id=keys.account_id, issuer_id=issuer_id,
                    body=UserCreate(username_type="email", username=inv.email_invited, password=password),
                    auth=flow.event_auth(None, issuer_id, ip))
            await mark_email_verified(session, user, flow.event_auth(user.id, issuer_id, ip),
                                      via="invitation")
            await invitations.accept_invitation(session, account_id=keys.account_id, issuer_id=issuer_id,
                                                invitation_id=inv.id, user=user)
            return message_page(t("joined_title", name=ctx["org_name"]),
                                t("joined", name=ctx["org_name"], email=user.username),
                                status_code=200, is_error=False, **ctx)
    except (Conflict, ValidationError):
        # Already a member (added since), a look-alike username, ...: all of it rolled back.
        t = ctx["t"]
        return message_page(t("invitation_error"), t("invitation_conflict", name=ctx["org_name"]),
                            status_code=409, **ctx)


@router.post("/{issuer_id}/invitation/{token}/decline", include_in_schema=False)
async def decline_submit(issuer_id: str, token: str, request: Request) -> Response:
    """Decline: the invitation is marked declined (`organization.invitation.declined`)."""
    keys = await key_set(request, issuer_id)
    if keys is None:
        return _not_found()
    form = await request.form()
    ip = client_ip(request)
    async with request.app.state.db.unit_of_work() as session:
        ctx, inv, org, refused = await _posted(session, request, keys, token, str(form.get("csrf") or ""))
        if refused is not None or inv is None:
            return refused or _not_found()
        t = ctx["t"]
        await invitations.decline_invitation(session, inv, flow.event_auth(None, issuer_id, ip))
        return message_page(t("declined_title"), t("declined", name=ctx["org_name"]), status_code=200,
                            is_error=False, **ctx)

